"""The API as its own process (``hpsearch serve --workers 0``): it serves the REST trial
API, reaps a silent client's trial and re-delivers its configuration, and never loads
torch (it trains nothing)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from search.lifecycle import CLIENT_LOST_REASON
from tests.processes import env_for, free_port, spawn, stop, wait_healthy

SPEC = {
    "name": "own-code",
    "model": "external",
    "objective": {"metric": "val_loss", "direction": "minimize"},
    "search": {
        "sampler": "random",
        "n_trials": 3,
        "parallelism": 2,
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}},
    },
}


def _wait_state(api: httpx.Client, study_id: int, number: int, state: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        trial = api.get(f"/api/v1/studies/{study_id}/trials/{number}").json()
        if trial["state"] == state:
            return dict(trial)
        time.sleep(0.2)
    raise AssertionError(f"trial {number} never {state}: {trial}")


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``hpsearch serve --workers 0`` on each backend: its URL and process."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = spawn(
        ["serve", "--workers", "0", "--port", str(port)],
        env=env_for(db_url),
        log=tmp_path / "serve.log",
    )
    try:
        wait_healthy(base, proc)
        yield base, proc
    finally:
        stop(proc)


def test_the_api_process_reaps_silent_clients_and_never_loads_torch(
    api: tuple[str, subprocess.Popen[bytes]],
) -> None:
    base, proc = api
    with httpx.Client(base_url=base, timeout=30) as client:
        sid = client.post("/api/v1/studies", json=SPEC).json()["id"]
        silent = client.post(f"/api/v1/studies/{sid}/trials/claim").json()
        alive = client.post(f"/api/v1/studies/{sid}/trials/claim").json()
        lease = {"lease": alive["lease"]}
        for epoch in range(3):
            body = lease | {"epoch": epoch, "metrics": {"train_loss": 1.0, "val_loss": 0.5}}
            r = client.post(f"/api/v1/studies/{sid}/trials/{alive['number']}/report", json=body)
            assert r.json()["decision"] == "continue"
        # The silent client's lease runs out (HPS_GRACE_PERIOD=4): the API's own reaper
        # fails the attempt and its slot is handed out again, unchanged.
        lost = _wait_state(client, sid, silent["number"], "FAIL")
        assert lost["prune_reason"] == CLIENT_LOST_REASON
        again = client.post(f"/api/v1/studies/{sid}/trials/claim").json()
        assert (again["slot"], again["params"]) == (silent["slot"], silent["params"])
        late = client.post(
            f"/api/v1/studies/{sid}/trials/{silent['number']}/complete",
            json={"lease": silent["lease"], "metrics": {"val_loss": 0.1}},
        )
        assert late.status_code == 409
    maps = Path(f"/proc/{proc.pid}/maps").read_text()
    assert "libtorch" not in maps, "the API process loaded torch"


def test_more_concurrent_trial_calls_than_pooled_connections_all_succeed(
    api: tuple[str, subprocess.Popen[bytes]],
) -> None:
    """Each trial call holds one database connection at a time: 24 clients at once (the
    pool has 10 on PostgreSQL) all get their answers, never a pool timeout's 500."""
    base, _ = api
    clients = 24
    spec = SPEC | {"search": SPEC["search"] | {"n_trials": clients, "parallelism": clients}}
    sid = httpx.post(f"{base}/api/v1/studies", json=spec, timeout=30).json()["id"]
    start = threading.Barrier(clients)

    def one_trial(_: int) -> list[int]:
        with httpx.Client(base_url=f"{base}/api/v1/studies/{sid}/trials", timeout=60) as c:
            start.wait()
            claimed = c.post("/claim")
            codes = [claimed.status_code]
            if claimed.status_code != 200:
                return codes
            trial = claimed.json()
            lease, url = trial["lease"], f"/{trial['number']}"
            for epoch in range(3):
                body = {"lease": lease, "epoch": epoch, "metrics": {"val_loss": 0.5}}
                codes.append(c.post(f"{url}/report", json=body).status_code)
            body = {"lease": lease, "metrics": {"val_loss": 0.4}}
            codes.append(c.post(f"{url}/complete", json=body).status_code)
            return codes

    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(one_trial, range(clients)))
    assert all(code == 200 for codes in answers for code in codes), answers
    study = httpx.get(f"{base}/api/v1/studies/{sid}", timeout=30).json()
    assert study["status"] == "completed" and study["counts"]["complete"] == clients
