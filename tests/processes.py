"""Helpers for tests that run the real service and workers as separate processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

FAST_ENV = {
    "HPS_HEARTBEAT_INTERVAL": "0.5",
    "HPS_GRACE_PERIOD": "4",
    "HPS_POLL_INTERVAL": "0.2",
    "HPS_THREADS": "1",
    "HPS_LOG_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(db_url: str, **extra: str) -> dict[str, str]:
    return os.environ | FAST_ENV | {"HPS_DATABASE_URL": db_url} | extra


def spawn(
    args: list[str], *, env: dict[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """``python -m service.cli ARGS`` in its own process group, output to ``log``."""
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        cwd=cwd,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_healthy(base_url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early with {proc.returncode}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base_url} not healthy after {timeout}s")


def wait_study(base_url: str, study_id: int, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        study = httpx.get(f"{base_url}/api/v1/studies/{study_id}", timeout=10).json()
        if study["status"] in ("completed", "cancelled"):
            return dict(study)
        time.sleep(0.3)
    raise AssertionError(f"study {study_id} not finished after {timeout}s: {study}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 60) -> int:
    """Signal the process group and wait; kill it if it does not exit."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"process {proc.args} ignored signal {sig}") from None


@contextlib.contextmanager
def api_in_thread(database_url: str) -> Iterator[str]:
    """The app on ``database_url`` served over HTTP by uvicorn in a thread of this process
    (for the CLI, which talks HTTP); its base URL."""
    import threading

    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    app = create_app(Settings(database_url=database_url), recover=False)
    server = uvicorn.Server(uvicorn.Config(app, port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
