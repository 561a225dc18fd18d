"""The service under load and faults, as real processes on SQLite:

- 50 concurrent pollers (study status, leaderboard, study page, live changes) with API keys
  while 2 workers train: no errors, no "database is locked" anywhere, the study finishes;
- the API SIGKILLed during a burst of submissions: every study acknowledged with 201 exists
  after the restart, and finishes.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from service.keys import create_key
from tests.processes import env_for, free_port, spawn, stop, wait_healthy, wait_study

POLLERS = 50
TRAINING = {
    "name": "under-load",
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": 6,
        "parallelism": 2,
        "space": {"lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}},
    },
    "training": {"epochs": 4, "hidden": [32]},
}
TINY = {"dataset": "iris", "search": {"n_trials": 1}, "training": {"epochs": 1}}


def poll(base: str, key: str, study_id: int, stop_at: float, done: threading.Event) -> dict:
    """One client polling until the study ends; what it saw."""
    seen: dict[str, Any] = {"requests": 0, "errors": []}
    urls = [
        f"/api/v1/studies/{study_id}",
        f"/api/v1/studies/{study_id}/leaderboard",
        f"/studies/{study_id}",
        f"/api/v1/studies/{study_id}/changes",
    ]
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/html"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        i = 0
        while not done.is_set() and time.monotonic() < stop_at:
            url = urls[i % len(urls)]
            i += 1
            try:
                r = client.get(url)
                if r.status_code != 200:
                    seen["errors"].append(f"{url}: {r.status_code} {r.text[:200]}")
            except httpx.HTTPError as exc:
                seen["errors"].append(f"{url}: {type(exc).__name__} {exc}")
            seen["requests"] += 1
            time.sleep(0.2)  # 50 pollers at 5 Hz: 250 requests/s offered
    return seen


def test_fifty_pollers_while_two_workers_train(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hps.db'}"
    key = create_key(url, "poller")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    proc = spawn(
        ["serve", "--port", str(port), "--workers", "2"],
        env=env_for(url, HPS_AUTH="on", HPS_LOG_LEVEL="INFO"),
        log=log,
    )
    try:
        wait_healthy(base, proc)
        auth = {"Authorization": f"Bearer {key}"}
        study_id = httpx.post(f"{base}/api/v1/studies", json=TRAINING, headers=auth).json()["id"]
        done = threading.Event()
        stop_at = time.monotonic() + 180
        with ThreadPoolExecutor(POLLERS) as pool:
            futures = [
                pool.submit(poll, base, key, study_id, stop_at, done) for _ in range(POLLERS)
            ]
            study: dict[str, Any] | None = None
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                study = httpx.get(f"{base}/api/v1/studies/{study_id}", headers=auth).json()
                if study["status"] == "completed":
                    break
                time.sleep(0.5)
            done.set()
            results = [f.result() for f in futures]
    finally:
        stop(proc)
    errors = [e for r in results for e in r["errors"]]
    assert errors == []
    assert sum(r["requests"] for r in results) >= POLLERS * 4  # every poller kept polling
    assert study is not None and study["status"] == "completed"
    assert study["counts"]["complete"] == TRAINING["search"]["n_trials"]
    text = log.read_text()
    assert "database is locked" not in text
    assert "Traceback" not in text


def test_api_killed_during_a_burst_of_submissions_loses_no_acknowledged_study(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'hps.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = env_for(url)
    api = spawn(["serve", "--port", str(port), "--workers", "0"], env=env, log=tmp_path / "api.log")
    worker = spawn(["worker"], env=env, log=tmp_path / "worker.log")
    acknowledged: list[int] = []
    lock = threading.Lock()
    try:
        wait_healthy(base, api)

        def submit(i: int) -> None:
            spec = TINY | {"name": f"burst-{i}"}
            try:
                r = httpx.post(f"{base}/api/v1/studies", json=spec, timeout=30)
            except httpx.HTTPError:
                return  # the API died under it: not acknowledged
            if r.status_code == 201:
                with lock:
                    acknowledged.append(r.json()["id"])

        with ThreadPoolExecutor(12) as pool:
            for i in range(60):
                pool.submit(submit, i)
                if i == 30:  # mid-burst: some answered, some in flight, some not yet sent
                    while len(acknowledged) < 3:
                        time.sleep(0.01)
                    stop(api, signal.SIGKILL)
        assert 3 <= len(acknowledged) < 60
        api = spawn(
            ["serve", "--port", str(port), "--workers", "0"], env=env, log=tmp_path / "api2.log"
        )
        wait_healthy(base, api)
        for study_id in acknowledged:
            finished = wait_study(base, study_id, timeout=240)
            assert finished["status"] == "completed"
            assert finished["counts"]["complete"] == 1
    finally:
        stop(worker)
        stop(api)
