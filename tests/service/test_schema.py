"""Schemathesis over the app's own OpenAPI schema, as its CLI runs it: every check
(``--checks all``) and every phase (examples, coverage, fuzzing, stateful), a fixed seed and
a bounded number of cases, against a real ``hpsearch serve`` on a fresh SQLite file.

No failure is allowed: no server error, every status code and header documented, every
response conforming, every schema-violating request rejected and every schema-valid one
accepted, except where ``schemathesis.toml`` (next to this file) says why JSON Schema
cannot state an operation's rules (those answer 422 naming the field).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.processes import env_for, free_port, spawn, stop, wait_healthy

HERE = Path(__file__).resolve().parent
EXAMPLES = 20  # per operation and phase: a fixed, bounded number of cases
SEED = 1


def test_api_conforms_to_its_schema_under_every_check(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = env_for(f"sqlite:///{tmp_path / 'hps.db'}", HPS_AUTH="off")
    server = spawn(["serve", "--workers", "0", "--port", str(port)], env=env, log=tmp_path / "log")
    try:
        wait_healthy(base, server)
        st = [sys.executable, "-m", "schemathesis.cli", "--no-color"]
        st += ["--config-file", str(HERE / "schemathesis.toml"), "run", f"{base}/openapi.json"]
        st += ["--checks", "all", "--max-examples", str(EXAMPLES), "--seed", str(SEED)]
        run = subprocess.run(st, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    finally:
        stop(server)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failure" not in run.stdout.split("SUMMARY")[-1]
