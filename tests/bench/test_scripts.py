"""Every benchmark script answers ``--help`` (it imports and parses its arguments); the
timings themselves are never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))


def test_the_suite_is_there() -> None:
    names = {p.stem for p in SCRIPTS}
    assert {"trainer", "reads", "pruning", "random_vs_grid", "quality", "report"} <= names


# One interpreter runs every script's ``--help`` in turn (runpy, as ``python SCRIPT``
# would): torch and optuna are imported once, not once per script.
DRIVER = """
import contextlib, io, json, os, runpy, sys, traceback
answers = {}
sys.path.insert(0, os.path.dirname(sys.argv[1]))  # as ``python SCRIPT`` puts its folder
for path in sys.argv[1:]:
    out, err, code = io.StringIO(), io.StringIO(), None
    sys.argv = [path, "--help"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            traceback.print_exc(file=err)
            code = "raised"
    answers[path] = (out.getvalue(), err.getvalue()[-2000:], code)
print(json.dumps(answers))
"""


def test_every_script_answers_help() -> None:
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, *map(str, SCRIPTS)],
        cwd=BENCH.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.splitlines()[-1])
    assert len(answers) == len(SCRIPTS)
    failed = {Path(p).name: err for p, (_, err, code) in answers.items() if code not in (0, None)}
    assert not failed, failed
    for path, (out, _, code) in answers.items():
        assert code == 0 and out.startswith("usage:"), (Path(path).name, code, out[:500])
