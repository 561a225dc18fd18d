"""The API as its own process (``hpsearch serve --workers 0``): it serves the REST trial
API, reaps a silent client's trial and re-delivers its configuration, and never loads
torch (it trains nothing)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

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


def test_the_api_process_reaps_silent_clients_and_never_loads_torch(
    db_url: str, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = spawn(
        ["serve", "--workers", "0", "--port", str(port)],
        env=env_for(db_url),
        log=tmp_path / "serve.log",
    )
    try:
        wait_healthy(base, proc)
        with httpx.Client(base_url=base, timeout=30) as api:
            sid = api.post("/api/v1/studies", json=SPEC).json()["id"]
            silent = api.post(f"/api/v1/studies/{sid}/trials/claim").json()
            alive = api.post(f"/api/v1/studies/{sid}/trials/claim").json()
            lease = {"lease": alive["lease"]}
            for epoch in range(3):
                body = lease | {"epoch": epoch, "metrics": {"train_loss": 1.0, "val_loss": 0.5}}
                r = api.post(f"/api/v1/studies/{sid}/trials/{alive['number']}/report", json=body)
                assert r.json()["decision"] == "continue"
            # The silent client's lease runs out (HPS_GRACE_PERIOD=4): the API's own
            # reaper fails the attempt and its slot is handed out again, unchanged.
            lost = _wait_state(api, sid, silent["number"], "FAIL")
            assert lost["prune_reason"] == CLIENT_LOST_REASON
            again = api.post(f"/api/v1/studies/{sid}/trials/claim").json()
            assert (again["slot"], again["params"]) == (silent["slot"], silent["params"])
            late = api.post(
                f"/api/v1/studies/{sid}/trials/{silent['number']}/complete",
                json={"lease": silent["lease"], "metrics": {"val_loss": 0.1}},
            )
            assert late.status_code == 409
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "libtorch" not in maps, "the API process loaded torch"
    finally:
        stop(proc)
