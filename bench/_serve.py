"""Drive real hpsearch processes for the end-to-end benchmarks: ``hpsearch serve`` (the
API and its local workers), extra ``hpsearch worker`` processes, and studies submitted
and watched over REST at a watching client's pace."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from typing import Any

import httpx

QUIET = {"HPS_LOG_LEVEL": "WARNING"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """``hpsearch serve --workers N`` on ``url``, plus any workers added later."""

    def __init__(self, url: str, workers: int, env: dict[str, str] | None = None) -> None:
        self.env = os.environ | QUIET | {"HPS_DATABASE_URL": url} | (env or {})
        self.log = tempfile.NamedTemporaryFile(prefix="hps-bench-", suffix=".log", delete=False)  # noqa: SIM115 (open while the processes run)
        port = free_port()
        self.base = f"http://127.0.0.1:{port}/api/v1"
        cmd = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
        self.procs = [self._start(cmd + ["--workers", str(workers)])]
        self.workers = workers
        self.last_study: int | None = None  # the id of the study run_study ran last

    def _start(self, cmd: list[str]) -> subprocess.Popen[bytes]:
        out = self.log  # the processes' own output, named if one fails
        return subprocess.Popen(cmd, env=self.env, stdout=out, stderr=out, start_new_session=True)

    def add_workers(self, n: int) -> None:
        for _ in range(n):
            self.procs.append(self._start([sys.executable, "-m", "service.cli", "worker"]))
        self.workers += n

    def wait_ready(self, timeout: float = 300) -> float:
        """Wait until the API answers and every worker has registered; returns seconds."""
        t0 = time.monotonic()
        while True:
            try:
                r = httpx.get(f"{self.base}/workers", params={"limit": 500}, timeout=5)
                live = [w for w in r.json()["data"] if w["status"] in ("idle", "busy")]
                if r.status_code == 200 and len(live) >= self.workers:
                    return time.monotonic() - t0
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            self._check_alive()
            if time.monotonic() - t0 > timeout:
                raise SystemExit(f"{self.workers} workers not registered in {timeout:.0f} s")
            time.sleep(0.5)

    def run_study(self, spec: dict[str, Any], timeout: float = 600) -> float:
        """Submit ``spec`` and wait for it to complete; the seconds from its creation to
        its end, by the database's own timestamps."""
        r = httpx.post(f"{self.base}/studies", json=spec, timeout=30)
        r.raise_for_status()
        study, deadline = r.json(), time.monotonic() + timeout
        self.last_study = int(study["id"])
        while study["status"] != "completed":
            if time.monotonic() > deadline or study["status"] in ("failed", "cancelled"):
                raise SystemExit(f"study {study['id']} is {study['status']} after {timeout} s")
            time.sleep(0.5)  # a watching client's pace: polling must not steal the cores
            self._check_alive()
            study = httpx.get(f"{self.base}/studies/{study['id']}", timeout=10).json()
        created, finished = (
            datetime.fromisoformat(study[k]) for k in ("created_at", "finished_at")
        )
        return (finished - created).total_seconds()

    def _check_alive(self) -> None:
        if any(p.poll() is not None for p in self.procs):
            raise SystemExit(f"an hpsearch process exited; its output is in {self.log.name}")

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.log.close()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["Service", "free_port"]
