"""End to end: `hpsearch serve` (API + 2 workers) on a temporary SQLite file, driven over
REST and through the CLI, then stopped with Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.processes import env_for, free_port, spawn, stop, wait_healthy, wait_study

SPEC = {
    "name": "e2e-digits",
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": 6,
        "parallelism": 2,
        "seed": 1,
        "space": {
            "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
            "keep_prob": {"type": "float", "low": 0.5, "high": 1.0},
            "hidden": {"type": "layers", "depth": [1, 2], "units": [16, 64]},
        },
    },
    "training": {"epochs": 3, "batch_size": 64},
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    db = f"sqlite:///{tmp_path / 'e2e.db'}"
    port = free_port()
    proc = spawn(
        ["serve", "--port", str(port), "--workers", "2"],
        env=env_for(db),
        log=tmp_path / "serve.log",
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        yield base, db, proc
    finally:
        stop(proc, signal.SIGKILL)
        print((tmp_path / "serve.log").read_text()[-5000:])


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=300,
    )


def test_serve_rest_cli_and_ctrl_c(
    server: tuple[str, str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    base, db, proc = server
    r = httpx.post(f"{base}/api/v1/studies", json=SPEC)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    study = wait_study(base, sid)
    assert study["status"] == "completed"
    counts = study["counts"]
    assert counts["running"] == 0
    assert counts["complete"] + counts["pruned"] + counts["fail"] == 6  # exactly n_trials

    board = httpx.get(f"{base}/api/v1/studies/{sid}/leaderboard", params={"top": 10}).json()
    values = [row["value"] for row in board["data"]]
    assert len(values) == counts["complete"] and values == sorted(values)
    for row in board["data"]:
        trial = httpx.get(f"{base}/api/v1/studies/{sid}/trials/{row['number']}").json()
        assert trial["state"] == "COMPLETE" and trial["value"] == row["value"]
        assert trial["curves"]["dev_loss"][-1] == row["value"]
    assert study["best"]["value"] == values[0]

    # The CLI against the live server: submit --watch, then leaderboard --json.
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC | {"name": "e2e-cli"}))
    watched = _cli("submit", str(spec_file), "--watch", "--url", base)
    assert watched.returncode == 0, watched.stderr
    assert "created study" in watched.stdout
    cli_id = int(watched.stdout.split("created study ")[1].split()[0])
    out = _cli("leaderboard", str(cli_id), "--json", "--url", base)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == httpx.get(f"{base}/api/v1/studies/{cli_id}/leaderboard").json()
    assert httpx.get(f"{base}/api/v1/studies/{cli_id}").json()["status"] == "completed"

    # Ctrl-C while trials run: everything stops, no trial is left RUNNING.
    long = SPEC | {"name": "e2e-long", "training": {"epochs": 1000, "lr": 1e-4}}
    long["search"] = SPEC["search"] | {"space": {}}
    lid = httpx.post(f"{base}/api/v1/studies", json=long).json()["id"]
    deadline = time.monotonic() + 120
    while httpx.get(f"{base}/api/v1/studies/{lid}").json()["counts"]["running"] < 2:
        assert time.monotonic() < deadline, "long trials never started"
        time.sleep(0.2)
    assert stop(proc, signal.SIGINT) in (0, 130, -signal.SIGINT)
    with create_engine(db).connect() as conn:
        states = conn.execute(
            text("SELECT state, reason FROM hps_trials WHERE study_id = :s"), {"s": lid}
        ).all()
        workers = conn.execute(text("SELECT status FROM hps_workers")).scalars().all()
    assert states and all(state != "RUNNING" for state, _ in states), states
    assert all("interrupted" in (reason or "") for _, reason in states)
    assert set(workers) == {"stopped"}


def test_worker_with_an_unavailable_device_fails_in_one_line(tmp_path: Path) -> None:
    env = {"HPS_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "worker", "--device", "cuda:99"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | env,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error:") and "cuda" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_wakes_idle_workers_when_a_study_arrives(tmp_path: Path) -> None:
    """Workers that would poll once an hour still take a submitted study at once: `serve`
    wakes them (SIGUSR1), also while they are starting (the signal must not kill them)."""
    db = f"sqlite:///{tmp_path / 'wake.db'}"
    port = free_port()
    env = env_for(db, HPS_POLL_INTERVAL="3600")
    proc = spawn(["serve", "--port", str(port), "--workers", "2"], env=env, log=tmp_path / "s.log")
    base = f"http://127.0.0.1:{port}/api/v1"
    small = SPEC | {"training": {"epochs": 2, "batch_size": 64}}
    small["search"] = SPEC["search"] | {"n_trials": 2}
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        early = httpx.post(f"{base}/studies", json=small | {"name": "while-starting"})
        assert early.status_code == 201, early.text
        assert wait_study(f"http://127.0.0.1:{port}", early.json()["id"], 120)["status"] == (
            "completed"
        )
        deadline = time.monotonic() + 60
        while [w["status"] for w in httpx.get(f"{base}/workers").json()["data"]] != ["idle"] * 2:
            assert time.monotonic() < deadline, "workers never went idle"
            time.sleep(0.2)
        idle = httpx.post(f"{base}/studies", json=small | {"name": "while-idle"})
        assert idle.status_code == 201, idle.text
        done = wait_study(f"http://127.0.0.1:{port}", idle.json()["id"], 120)
        ended = sum(done["counts"][k] for k in ("complete", "pruned", "fail"))
        assert done["status"] == "completed" and ended == 2  # however each one ended
        assert proc.poll() is None
    finally:
        stop(proc, signal.SIGKILL)
        print((tmp_path / "s.log").read_text()[-5000:])
