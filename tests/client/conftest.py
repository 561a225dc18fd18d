"""The real ``hpsearch serve`` (API only, no built-in workers) on each storage backend, for
the client's process-level tests."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.servers import Server
from tests.processes import env_for, free_port, spawn, stop, wait_healthy


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    log = tmp_path / "serve.log"
    proc = spawn(
        ["serve", "--port", str(port), "--workers", "0"],
        env=env_for(db_url),
        log=log,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    running = Server(url, tmp_path)
    try:
        wait_healthy(url, proc)
        yield running
    finally:
        for p, _ in running.procs:
            if p.poll() is None:
                stop(p, signal.SIGKILL)
        stop(proc, signal.SIGKILL)
        print(log.read_text(errors="replace")[-5000:])
        for p, plog in running.procs:
            print(f"--- {p.args[:4]} -> {p.returncode}\n{plog.read_text(errors='replace')[-3000:]}")
