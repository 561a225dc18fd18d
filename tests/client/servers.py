"""Helpers for the client's process-level tests: a running ``hpsearch serve`` (API only, no
built-in workers) and the clients and agents started against it as separate processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

# For tests of what the client or the agent does (signals, exit codes, its process group),
# which is the same whatever database the server uses: SQLite only. The lifecycle's own
# guarantees run on both backends (test_lifecycle_processes, test_study's shared study).
CLIENT_SIDE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "width": {"type": "int", "low": 8, "high": 64},
}


def external_spec(n_trials: int = 6, parallelism: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "model": "external",
        "objective": {"metric": "val_auc", "direction": "maximize"},
        "search": {
            "sampler": "random",
            "n_trials": n_trials,
            "parallelism": parallelism,
            "space": SPACE,
        },
        **extra,
    }


@dataclass
class Server:
    url: str
    logs: Path
    procs: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def submit(self, spec: dict[str, Any]) -> int:
        r = httpx.post(f"{self.url}/api/v1/studies", json=spec, timeout=30)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def trials(self, study_id: int) -> list[dict[str, Any]]:
        r = httpx.get(
            f"{self.url}/api/v1/studies/{study_id}/trials",
            params={"limit": 1000, "sort": "number"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return list(r.json()["data"])

    def trial(self, study_id: int, number: int) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/api/v1/studies/{study_id}/trials/{number}", timeout=30)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def study(self, study_id: int) -> dict[str, Any]:
        r = httpx.get(
            f"{self.url}/api/v1/studies/{study_id}",
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    def client_env(self) -> dict[str, str]:
        """What a client or agent gets: the API's URL, never the database's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HPS_")}
        return env | {"HPS_URL": self.url}

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """``args`` as a process of its own (own session), output to ``name``.log."""
        log = self.logs / f"{name}.log"
        out = log.open("ab")
        proc = subprocess.Popen(
            args,
            env=self.client_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.procs.append((proc, log))
        return proc

    def client(self, name: str, script: str, *args: str) -> subprocess.Popen[bytes]:
        return self.start(name, [sys.executable, "-c", script, *args])

    def agent(self, name: str, study_id: int, *args: str) -> subprocess.Popen[bytes]:
        """``hpsearch agent STUDY ARGS`` through the main CLI."""
        return self.start(
            name, [sys.executable, "-m", "service.cli", "agent", str(study_id), *args]
        )

    def wait(self, proc: subprocess.Popen[bytes], timeout: float = 240) -> int:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{proc.args} still running after {timeout}s") from None

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        return next(log for p, log in self.procs if p is proc).read_text(errors="replace")


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def wait_for(what: str, check: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"no {what} after {timeout}s"
        time.sleep(0.1)
