"""Report: run the benchmark suite and rewrite the Performance page, docs/performance.md.

Each ``bench/NAME.py`` in the suite is run with this Python (or its saved run is reused),
its standard output captured, and the page's subsection for NAME, between the markers
``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``, replaced by the command, the date, the
machine (cores, CPU model, load average before and after), the Python, torch and optuna
versions, the git commit and the output verbatim. Text outside the markers (notes written
by hand) is kept; a subsection missing from the page is added at the end of its
Performance section (the first heading titled "Performance", at any level). A script that
fails, or is missing, leaves its subsection as it was and makes the exit status 1.

    .venv/bin/python bench/report.py [--only trainer,reads] [--saved DIR]
        [--args 'trainer=--device cuda'] [--target docs/performance.md] [--dry-run]

``make bench`` runs the whole suite; ``make bench BENCH=trainer,reads`` only those.
``--saved DIR`` keeps each run as DIR/NAME.json and reuses one found there, so a long
suite can be run piece by piece (or on another machine) and assembled later.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SUITE = (
    "trainer",
    "overhead",
    "scaling",
    "batched",
    "reads",
    "load",
    "remote",
    "pruning",
    "random_vs_grid",
    "quality",
)
TARGET = ROOT / "docs" / "performance.md"
SECTION = "Performance"  # the title of the section holding the subsections


@dataclass(frozen=True)
class Run:
    """One script's run: what was run, where, when, and what it printed."""

    name: str
    command: str
    date: str  # UTC, minutes
    commit: str  # short hash, "+dirty" with uncommitted changes
    cores: int
    cpu: str
    load: str  # 1-minute load average before -> after
    versions: str  # Python, torch, optuna
    seconds: float
    stdout: str

    def markdown(self) -> str:
        facts = (
            f"`{self.command}` on {self.date}, commit {self.commit}, {self.cores} cores "
            f"({self.cpu}), load average {self.load}, {self.versions}, {self.seconds:.0f} s:"
        )
        return f"{facts}\n\n```text\n{self.stdout.rstrip()}\n```"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def versions() -> str:
    found = [f"Python {platform.python_version()}"]
    for package in ("torch", "optuna"):
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package} not installed")
    return ", ".join(found)


def run_script(name: str, args: list[str]) -> Run | None:
    """Run bench/NAME.py with ``args``; None (after saying why on stderr) if it failed."""
    script = BENCH / f"{name}.py"
    if not script.exists():
        print(f"report: {script.relative_to(ROOT)} does not exist; skipped", file=sys.stderr)
        return None
    command = shlex.join(["python", f"bench/{name}.py", *args])
    print(f"report: running {command}", file=sys.stderr, flush=True)
    before, t0 = os.getloadavg()[0], time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(script), *args], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        print(f"report: {command} exited with {done.returncode}", file=sys.stderr)
        return None
    return Run(
        name=name,
        command=command,
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        commit=git_commit(),
        cores=os.cpu_count() or 0,
        cpu=cpu_model(),
        load=f"{before:.1f} -> {os.getloadavg()[0]:.1f}",
        versions=versions(),
        seconds=seconds,
        stdout=done.stdout,
    )


def _headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(line index, level, title) of each Markdown heading outside fenced code blocks
    (a benchmark's output may hold lines that start with ``#``)."""
    found: list[tuple[int, int, str]] = []
    fence = ""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if fence:
            if stripped.startswith(fence):
                fence = ""
            continue
        if stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            continue
        hashes = len(line) - len(line.lstrip("#"))
        if 1 <= hashes <= 6 and line[hashes : hashes + 1] == " ":
            found.append((i, hashes, line[hashes:].strip()))
    return found


def replace_subsection(text: str, name: str, body: str) -> str:
    """``text`` with the text between NAME's markers replaced by ``body``; a subsection
    headed NAME (one level below the Performance heading) holding the markers is added at
    the end of the Performance section when they are missing. Raises ValueError when there
    is no Performance heading."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    lines = text.splitlines(keepends=True)
    headings = _headings(lines)
    starts = [(i, level) for i, level, title in headings if title == SECTION]
    if not starts:
        raise ValueError(f"no {SECTION!r} heading to add {name!r} to")
    start, level = starts[0]
    after = [i for i, lvl, _ in headings if i > start and lvl <= level]
    at = after[0] if after else len(lines)
    while at > start + 1 and not lines[at - 1].strip():
        at -= 1
    if at and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    new = f"\n{'#' * (level + 1)} {name}\n\n{block}\n" + ("\n" if after else "")
    return "".join(lines[:at]) + new + "".join(lines[at:])


def suite_runs(
    names: list[str], saved: Path | None, script_args: dict[str, list[str]]
) -> dict[str, Run]:
    """NAME -> Run for each name that ran (or was found saved); missing ones failed."""
    runs: dict[str, Run] = {}
    for name in names:
        path = saved / f"{name}.json" if saved else None
        if path is not None and path.exists():
            runs[name] = Run(**json.loads(path.read_text()))
            print(f"report: {name} from {path}", file=sys.stderr)
            continue
        run = run_script(name, script_args.get(name, []))
        if run is None:
            continue
        runs[name] = run
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(asdict(run), indent=1))
    return runs


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SUITE]
    if unknown:
        raise argparse.ArgumentTypeError(f"not in the suite: {', '.join(unknown)}")
    return names


def _script_args(pairs: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, args = pair.partition("=")
        if not sep or name not in SUITE:
            raise SystemExit(f"report: --args takes NAME=ARGS with NAME in the suite, got {pair!r}")
        found[name] = shlex.split(args)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=_names, default=list(SUITE), help=",".join(SUITE))
    parser.add_argument("--saved", type=Path, help="reuse/keep runs as DIR/NAME.json")
    parser.add_argument(
        "--args", action="append", default=[], help="NAME=ARGS for one script (repeatable)"
    )
    parser.add_argument(
        "--target",
        type=Path,
        default=TARGET,
        help="the page to rewrite (default: docs/performance.md)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print, leave the page")
    args = parser.parse_args()
    runs = suite_runs(args.only, args.saved, _script_args(args.args))
    page = args.target.read_text()
    for name, run in runs.items():
        page = replace_subsection(page, name, run.markdown())
    if args.dry_run:
        print(page)
    else:
        args.target.write_text(page)
        print(f"report: {args.target} updated: {', '.join(runs) or 'nothing'}", file=sys.stderr)
    failed = [n for n in args.only if n not in runs]
    if failed:
        raise SystemExit(f"report: no result for {', '.join(failed)} (left as they were)")


if __name__ == "__main__":
    main()
