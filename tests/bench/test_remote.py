"""bench/remote.py end to end in its smallest configuration (``--quick``: two rounds of two
trials per path, here with 2 client processes only, 4 reporting clients for one second):
both servers start, every trial makes all its calls, the load part reports without an
error, and the tables come out. SQLite only: the script, not the database, is under test
here (``make bench`` runs both). The timings themselves are never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "remote.py"


@pytest.mark.timeout(600)
def test_the_remote_bench_runs_end_to_end() -> None:
    backend = "sqlite"  # the smoke run checks the script; `make bench` runs PostgreSQL too
    cmd = [sys.executable, str(SCRIPT), "--quick", "--backends", backend, "--clients", "2"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    cost = [line.split() for line in lines if line.startswith(backend)]
    # the cost table: (none, median) x 2 clients, then the load row
    assert [(row[1], row[2]) for row in cost[:2]] == [("none", "2"), ("median", "2")], done.stdout
    for row in cost[:2]:
        rest_ms, grpc_ms = float(row[3]), float(row[4])
        assert rest_ms > 0 and grpc_ms > 0 and row[5].endswith("x")
    load = cost[2]
    reports, errors = int(load[1]), int(load[6])
    assert reports > 0 and errors == 0, done.stdout
