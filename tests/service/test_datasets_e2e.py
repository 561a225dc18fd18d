"""Processes on PostgreSQL, the many-machines setting where nothing but the database is
shared: a table uploaded through the CLI to an API process (no local workers) trains on a
worker process started afterwards in another directory, which reads it from the database
alone; the CLI shows the held-out result and downloads a model that reproduces it. (The
same path on SQLite runs in-process in ``tests/search/test_user_datasets.py``.)"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from models import Table, feature_kinds, read_model, split_table
from tests.processes import env_for, free_port, spawn, stop, wait_healthy, wait_study
from tests.tabular_data import classification_frame, csv_bytes, small_spec


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def _wait_scored(base: str, study_id: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        study = httpx.get(f"{base}/api/v1/studies/{study_id}", timeout=10).json()
        if study["test"]["state"] != "pending":
            return dict(study)
        time.sleep(0.2)
    raise AssertionError(f"study {study_id}'s winner was never scored: {study}")


@pytest.mark.timeout(300)
def test_uploaded_data_trains_on_a_worker_started_later(postgres_url: str, tmp_path: Path) -> None:
    db_url = postgres_url
    dirs = {name: tmp_path / name for name in ("api", "client", "worker")}
    for d in dirs.values():
        d.mkdir()
    frame = classification_frame()
    (dirs["client"] / "pets.csv").write_bytes(csv_bytes(frame))
    (dirs["client"] / "spec.json").write_text(
        json.dumps(small_spec("pets", "pets", metric="dev_accuracy"))
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api = spawn(
        ["serve", "--port", str(port), "--workers", "0"],
        env=env_for(db_url),
        log=tmp_path / "api.log",
        cwd=dirs["api"],
    )
    worker = None
    try:
        wait_healthy(base, api)
        up = _cli(
            "datasets",
            "upload",
            "pets.csv",
            "--target",
            "animal",
            "--url",
            base,
            cwd=dirs["client"],
        )
        assert up.returncode == 0, up.stderr
        assert up.stdout.startswith("uploaded dataset 1 (pets): 150 rows, 4 columns")
        assert "classification (inferred)" in up.stdout
        again = _cli(
            "datasets",
            "upload",
            "pets.csv",
            "--target",
            "animal",
            "--url",
            base,
            cwd=dirs["client"],
        )
        assert again.stdout.startswith("already uploaded as dataset 1"), again.stdout
        (dirs["client"] / "pets.csv").unlink()  # the worker can only get it from the database
        shown = _cli("datasets", "show", "1", "--url", base, cwd=dirs["client"])
        assert "colour" in shown.stdout and "categorical" in shown.stdout, shown.stdout
        submitted = _cli("submit", "spec.json", "--url", base, cwd=dirs["client"])
        assert submitted.returncode == 0, submitted.stderr
        sid = int(submitted.stdout.split("created study ")[1].split()[0])

        worker = spawn(
            ["worker"], env=env_for(db_url), log=tmp_path / "worker.log", cwd=dirs["worker"]
        )
        assert wait_study(base, sid, timeout=180)["status"] == "completed"
        study = _wait_scored(base, sid)
        assert study["test"]["state"] == "done", study["test"]
        busy = _cli("datasets", "delete", "1", "--url", base, cwd=dirs["client"])

        status = _cli("status", str(sid), "--url", base, cwd=dirs["client"])
        assert "held-out test set (trial" in status.stdout, status.stdout
        assert "bias/variance:" in status.stdout
        saved = _cli("download", str(sid), "-o", "best.zip", "--url", base, cwd=dirs["client"])
        assert saved.returncode == 0, saved.stderr
    finally:
        if worker is not None:
            stop(worker)
        stop(api)
        for name in ("api.log", "worker.log"):
            print(name, (tmp_path / name).read_text()[-3000:])
    assert busy.returncode == 0 and busy.stdout.strip() == "deleted dataset 1"  # study done
    assert list(dirs["worker"].iterdir()) == []  # the worker wrote no files
    model = read_model((dirs["client"] / "best.zip").read_bytes())
    table = Table(frame, "animal", "classification", feature_kinds(frame, "animal"))
    test = split_table(table, (0.6, 0.2, 0.2), 0)[2]
    predicted = model(test.drop(columns=["animal"]))
    accuracy = float(np.mean(predicted == test["animal"].to_numpy()))
    assert accuracy == pytest.approx(study["test"]["metrics"]["accuracy"], abs=1e-6)
    assert model.config["trial"] == study["test"]["trial"] == study["best"]["number"]
