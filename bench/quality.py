"""Quality: the shipped examples' best dev score, the winner's test score and wall time.

Each ``examples/*.yaml`` is submitted over REST to a real ``hpsearch serve`` started the way
``make serve`` starts it (``--workers 2``, SQLite, default settings; only the database file
and the port are fresh), and the study is polled at a watching client's pace until the
winner has had its one look at the test split. Printed per example: trials completed (and
pruned), the best trial's dev accuracy (dev loss, and RMSE for regression), the winner's
test accuracy (or RMSE), the search's own wall time (study created to finished) and the
time until the test score was in. Digits must reach >= 97.5% test accuracy within 5
minutes on 2 cores; rows with a test accuracy are checked against that target.

    .venv/bin/python bench/quality.py [--examples digits-random,digits-cnn] [--budget 600]
        [--workers 2]

``--budget`` is the most seconds one example may take: a study still running then is
cancelled (the winner so far is still scored on the test split) and its row says so.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import yaml
from _serve import free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TARGET_ACCURACY, TARGET_S = 0.975, 300.0
POLL_S = 1.0  # a watching client's pace: polling must not steal the workers' cores


@dataclass(frozen=True)
class Outcome:
    example: str
    model: str
    seed: int | None  # the search's seed
    trials: str  # "complete/pruned/total"
    dev: str  # best trial's dev accuracy (or dev loss / RMSE for regression)
    test: str
    test_accuracy: float | None
    search_s: float
    total_s: float
    note: str


@contextlib.contextmanager
def serve(workers: int, log: Path) -> Iterator[str]:
    """``hpsearch serve --workers N`` on a fresh SQLite file; yields the API's base URL."""
    db = f"sqlite:///{log.parent / 'quality.db'}"
    port = free_port()
    env = os.environ | {"HPS_DATABASE_URL": db, "HPS_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
    with log.open("ab") as out:
        server = subprocess.Popen(
            [*cmd, "--workers", str(workers)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        _wait_healthy(base, server)
        time.sleep(5)  # let the workers finish starting (imports), as a running service has
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _wait_healthy(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"hpsearch serve exited with {server.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit("hpsearch serve never became healthy")


def run_example(base: str, name: str, budget_s: float, seed: int | None = None) -> Outcome:
    """Submit ``examples/NAME.yaml`` (with its search seed replaced when ``seed`` is given),
    wait for its test score (cancel it past the budget)."""
    spec = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    if seed is not None:
        spec["search"]["seed"] = seed
    t0 = time.perf_counter()
    r = httpx.post(f"{base}/studies", json=spec, timeout=60)
    r.raise_for_status()
    study, note = r.json(), ""
    while study["status"] not in ("completed", "cancelled") or study["test"]["state"] == "pending":
        # past the budget: cancel once (the next reads see "cancelled")
        if study["status"] in ("queued", "running") and time.perf_counter() - t0 > budget_s:
            httpx.post(f"{base}/studies/{study['id']}/cancel", timeout=30)
            note = f"cancelled at the {budget_s:.0f}-s budget"
        time.sleep(POLL_S)
        study = httpx.get(f"{base}/studies/{study['id']}", timeout=30).json()
    total = time.perf_counter() - t0
    board = httpx.get(f"{base}/studies/{study['id']}/leaderboard?top=1", timeout=30).json()
    return _outcome(name, spec, study, board["data"][:1], total, note)


def _outcome(
    name: str,
    spec: dict[str, Any],
    study: dict[str, Any],
    best: list[dict[str, Any]],
    total_s: float,
    note: str,
) -> Outcome:
    created, finished = (datetime.fromisoformat(study[k]) for k in ("created_at", "finished_at"))
    counts = study["counts"]
    trials = f"{counts.get('complete', 0)}/{counts.get('pruned', 0)}/{study['n_trials']}"
    metrics = best[0]["metrics"] if best else {}
    test = study["test"]["metrics"] or {}
    if study["task"] == "classification":
        dev = _percent(metrics.get("dev_accuracy"))
        test_text, test_accuracy = _percent(test.get("accuracy")), test.get("accuracy")
    else:
        dev = f"loss {_number(metrics.get('dev_loss'))}, RMSE {_number(metrics.get('dev_rmse'))}"
        test_text, test_accuracy = f"RMSE {_number(test.get('rmse'))}", None
    if study["test"]["state"] != "done":
        note = "; ".join(filter(None, [note, f"test {study['test']['state']}"]))
    return Outcome(
        example=name,
        model=spec.get("model", "mlp"),
        seed=spec["search"].get("seed"),
        trials=trials,
        dev=dev,
        test=test_text,
        test_accuracy=test_accuracy,
        search_s=(finished - created).total_seconds(),
        total_s=total_s,
        note=note,
    )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def verdict(o: Outcome) -> str:
    """The digits target, for rows with a test accuracy: >= 97.5% within 5 minutes."""
    if o.test_accuracy is None:
        return ""
    ok = o.test_accuracy >= TARGET_ACCURACY and o.total_s <= TARGET_S
    return "meets" if ok else "misses"


def table(outcomes: list[Outcome]) -> str:
    rows = [
        {
            "example": o.example,
            "model": o.model,
            "seed": "-" if o.seed is None else o.seed,
            "complete/pruned/trials": o.trials,
            "best dev": o.dev,
            "winner's test": o.test,
            "search s": f"{o.search_s:.1f}",
            "to test score s": f"{o.total_s:.1f}",
            f">= {100 * TARGET_ACCURACY:g}% in {TARGET_S:.0f} s": verdict(o),
            "note": o.note,
        }
        for o in outcomes
    ]
    return pd.DataFrame(rows).to_string(index=False)


def main() -> None:
    names = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--examples", default=",".join(names), help=f"comma-separated, of: {', '.join(names)}"
    )
    parser.add_argument("--budget", type=float, default=600.0, help="most seconds per example")
    parser.add_argument("--workers", type=int, default=2, help="make serve's default: 2")
    parser.add_argument(
        "--seeds",
        default="",
        help="comma-separated search seeds to run each example with (default: the example's own)",
    )
    args = parser.parse_args()
    chosen = [n.strip() for n in args.examples.split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown example(s) {', '.join(unknown)}; known: {', '.join(names)}")
    seeds: list[int | None] = [int(x) for x in args.seeds.split(",") if x.strip()] or [None]
    cores = os.cpu_count()
    print(f"hpsearch serve --workers {args.workers} on SQLite, {cores} cores, one study at a time")
    with (
        tempfile.TemporaryDirectory(prefix="hps-quality-") as tmp,
        serve(args.workers, Path(tmp) / "serve.log") as base,
    ):
        outcomes = [run_example(base, name, args.budget, seed) for name in chosen for seed in seeds]
    print(table(outcomes))


if __name__ == "__main__":
    main()
