"""Every benchmark script answers ``--help`` (it imports and parses its arguments); the
timings themselves are never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))


def test_the_suite_is_there() -> None:
    names = {p.stem for p in SCRIPTS}
    assert {"trainer", "reads", "pruning", "random_vs_grid", "quality", "report"} <= names


def test_every_script_answers_help() -> None:
    # All at once: each pays its imports (torch, optuna) and little else.
    procs = {
        p.name: subprocess.Popen(
            [sys.executable, str(p), "--help"],
            cwd=BENCH.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in SCRIPTS
    }
    answers = {
        name: (*proc.communicate(timeout=240), proc.returncode) for name, proc in procs.items()
    }
    failed = {name: err[-2000:] for name, (_, err, rc) in answers.items() if rc != 0}
    assert not failed, failed
    for name, (out, _, _) in answers.items():
        assert out.startswith("usage:"), (name, out[:500])
