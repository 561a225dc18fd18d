"""bench/batched.py's smoke run: tiny studies on digits, an uploaded table and a CNN, in-process
workers, K = 1 and 4; its table parses, every trial completes and each K finds the same
best dev loss (to float32 rounding). Timings are never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_prints_a_table_of_every_case() -> None:
    command = [sys.executable, str(ROOT / "bench" / "batched.py"), "--quick", "--in-process"]
    command += ["--trials", "4", "--rows", "300", "--datasets", "digits,table,cnn"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("dataset"))
    rows = [line.split() for line in lines[header + 1 :] if not line.startswith("#")]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("digits", "1", "1"),
        ("digits", "1", "4"),
        ("table", "1", "1"),
        ("table", "1", "4"),
        ("cnn", "1", "1"),
        ("cnn", "1", "4"),
    ]
    for dataset, _, k, trials, seconds, wall, rate, speedup, _best, gap in rows:
        assert trials == "4" and float(seconds) > 0 and float(rate) > 0, (dataset, k)
        assert speedup.endswith("x") and float(wall) > 0
        # equal widths: each stacked trial gives its result alone, to float32 rounding
        assert float(gap) <= 1e-3, (dataset, k, gap)
    for alone, stacked in ((rows[0], rows[1]), (rows[2], rows[3]), (rows[4], rows[5])):
        assert abs(float(alone[8]) - float(stacked[8])) <= 1e-3  # the same best dev loss
    assert any(line.startswith("# digits, 1 worker(s): best K =") for line in lines)
