"""``hpsearch slurm`` without a cluster: the script for GPU flags against a checked-in file
(this Slurm cannot bind GPUs here: the script is compared, not run on GPUs), the own-code
script, and bad input as one clear line (unknown study, wrong kind, N < 1, no sbatch).
The commands against a real Slurm are in ``test_slurm.py``."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from search import store
from search.spec import ExperimentSpec
from search.studies import create_study
from service.cli import app
from service.slurm import ArrayRequest, hpsearch_command
from tests import own_code_data, study_data

EXPECTED_GPU = Path(__file__).with_name("slurm_gpu_expected.sh")
GPU_FLAGS = ["--workers", "4", "--parallel", "2", "--gpus-per-worker", "1"]
GPU_FLAGS += ["--cpus-per-worker", "8", "--mem", "32G", "--time", "2:00:00"]
GPU_FLAGS += ["--partition", "gpu", "--signal-before", "300"]
HPSEARCH = "/opt/hpsearch/bin/hpsearch"  # the expected file's stand-in for this venv's


def _study(url: str, spec: dict[str, Any]) -> int:
    factory = store.make_session_factory(url)
    return create_study(
        session_factory=factory, storage_url=url, spec=ExperimentSpec.model_validate(spec)
    ).id


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int, int]:
    """A built-in study (id 1) and one of the user's own code (id 2), on SQLite: these
    commands only read a study's row and kind, the same on every backend."""
    from service.runner import upgrade_db

    url = f"sqlite:///{tmp_path_factory.mktemp('slurm-cli') / 'hps.db'}"
    upgrade_db(url)
    return url, _study(url, study_data.SPEC), _study(url, own_code_data.SPEC)


def _slurm(url: str, command: str, *args: str) -> Any:
    return CliRunner().invoke(app, ["slurm", command, "--db", url, *args])


def test_gpu_script_matches_the_checked_in_file(studies: tuple[str, int, int]) -> None:
    url, builtin, _ = studies
    assert builtin == 1  # the expected file names study 1
    done = _slurm(url, "submit", "1", *GPU_FLAGS, "--dry-run")
    assert done.exit_code == 0, done.output
    script = done.output.replace(shlex.join(hpsearch_command()), HPSEARCH)
    assert script == EXPECTED_GPU.read_text()
    bash = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert bash.returncode == 0, bash.stderr


def test_batched_workers_in_the_script(studies: tuple[str, int, int]) -> None:
    url, builtin, _ = studies
    done = _slurm(url, "submit", str(builtin), "--workers", "2", "--batch-trials", "8", "--dry-run")
    assert done.exit_code == 0, done.output
    exec_line = shlex.split(done.output.splitlines()[-1])
    assert exec_line[exec_line.index("--batch-trials") + 1] == "8"
    assert exec_line[exec_line.index("worker") - len(hpsearch_command()) - 1] == "exec"


def test_own_code_script_runs_the_agent(studies: tuple[str, int, int]) -> None:
    url, _, external = studies
    cmd = ["python", "train.py", "--lr", "{lr}", "--note", "it's"]
    done = _slurm(url, "submit", str(external), "--workers", "2", "--dry-run", "--", *cmd)
    assert done.exit_code == 0, done.output
    exec_line = done.output.splitlines()[-1]
    assert shlex.split(exec_line) == ["exec", *hpsearch_command(), "agent", "2", "--", *cmd]
    assert "#SBATCH --array=0-1%2\n" in done.output
    assert "#SBATCH --gres" not in done.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["submit", "99", "--workers", "2"], 1, "error: study 99 not found"),
        (["status", "99"], 1, "error: study 99 not found"),
        (["cancel", "99"], 1, "error: study 99 not found"),
        (["submit", "1", "--workers", "0"], 2, "error: --workers must be at least 1, got 0"),
        (["submit", "1", "--workers", "2", "--parallel", "0"], 2, "--parallel must be at least"),
        (["submit", "1", "--workers", "2", "--mem", "lots"], 2, "--mem 'lots': give a size"),
        (["submit", "1", "--workers", "2", "--time", "1h\n#SBATCH -A x"], 2, "--time '1h"),
        (
            ["submit", "1", "--workers", "2", "--", "python", "train.py"],
            2,
            "error: study 1 trains a built-in model: its workers take no command",
        ),
        (
            ["submit", "2", "--workers", "2"],
            2,
            "error: study 2 trains your own code: give the command each trial runs after '--'",
        ),
        (["cancel", "1"], 1, "error: study 1: no Slurm job submitted, nothing to cancel"),
        (["submit", "1", "--workers", "2", "--batch-trials", "x"], 2, "batch trials must be"),
        (
            ["submit", "2", "--workers", "2", "--batch-trials", "4", "--", "python"],
            2,
            "error: study 2 trains your own code: --batch-trials stacks built-in MLP trials",
        ),
    ],
)
def test_bad_input_is_one_line(
    studies: tuple[str, int, int], args: list[str], code: int, message: str
) -> None:
    url = studies[0]
    done = _slurm(url, *args)
    assert done.exit_code == code, done.output
    assert message in done.output
    assert "Traceback" not in done.output


def test_status_without_jobs(studies: tuple[str, int, int]) -> None:
    done = _slurm(studies[0], "status", "1")
    assert (done.exit_code, done.output) == (
        0,
        "study 1: no Slurm job submitted (hpsearch slurm submit)\n",
    )


def test_ended_study_is_refused(studies: tuple[str, int, int]) -> None:
    url = studies[0]
    ended = _study(url, study_data.SPEC)
    with store.session_scope(store.make_session_factory(url)) as s:
        store.cancel_study(session=s, study_id=ended)
    done = _slurm(url, "submit", str(ended), "--workers", "2")
    assert done.exit_code == 1
    assert f"error: study {ended} is cancelled: it has no trials left to run" in done.output


def test_missing_sbatch_is_one_line(studies: tuple[str, int, int], tmp_path: Path) -> None:
    """No Slurm client on PATH: a line that says so, not a traceback (a real process)."""
    url = studies[0]
    env = os.environ | {"PATH": str(tmp_path)}
    for args in (["submit", "1", "--workers", "2"], ["status", "1"]):
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", "slurm", args[0], "--db", url, *args[1:]],
            env=env,
            capture_output=True,
            text=True,
        )
        if args[0] == "status":  # nothing recorded: status needs no squeue
            assert done.returncode == 0, done.stderr
            continue
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith("error: sbatch not found: run this on a Slurm login node")
        assert "Traceback" not in done.stderr


def test_request_validates_at_construction() -> None:
    with pytest.raises(ValueError, match="--cpus-per-worker must be at least 1"):
        ArrayRequest(workers=1, cpus=0)
    with pytest.raises(ValueError, match="--partition 'a b'"):
        ArrayRequest(workers=1, partition="a b")


def test_study_page_shows_its_slurm_jobs(studies: tuple[str, int, int]) -> None:
    """The page names each recorded job; recording one changes the study's version, so a
    page cached by its ETag is not served stale."""
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    url = studies[0]
    builtin = _study(url, study_data.SPEC)  # its own: the other tests expect no job recorded
    with TestClient(create_app(Settings(database_url=url), recover=False)) as client:
        before = client.get(f"/studies/{builtin}")
        assert before.status_code == 200
        assert "Slurm job" not in before.text
        with store.session_scope(store.make_session_factory(url)) as s:
            for job_id, size in (("123", 3), ("130", 1)):
                store.record_slurm_job(
                    session=s, study_id=builtin, job_id=job_id, array_size=size, submitted_by="ann"
                )
        after = client.get(f"/studies/{builtin}", headers={"If-None-Match": before.headers["etag"]})
        assert after.status_code == 200
        assert "Slurm job 123 (3 tasks)</span> · <span" in after.text
        assert "Slurm job 130 (1 task)</span>" in after.text
        assert "by ann; hpsearch slurm status" in after.text


def test_study_json_names_its_newest_slurm_job(studies: tuple[str, int, int]) -> None:
    """The API's study answer carries the newest job as recorded (id, tasks, when, who),
    the same record the page shows; a new job changes the answer's ETag."""
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    url = studies[0]
    builtin = _study(url, study_data.SPEC)
    with TestClient(create_app(Settings(database_url=url), recover=False)) as client:
        before = client.get(f"/api/v1/studies/{builtin}")
        assert before.status_code == 200 and before.json()["slurm_job"] is None
        with store.session_scope(store.make_session_factory(url)) as s:
            for job_id, size in (("123", 3), ("130", 1)):
                store.record_slurm_job(
                    session=s, study_id=builtin, job_id=job_id, array_size=size, submitted_by="ann"
                )
        after = client.get(
            f"/api/v1/studies/{builtin}", headers={"If-None-Match": before.headers["etag"]}
        )
        assert after.status_code == 200
        job = after.json()["slurm_job"]
        assert {k: job[k] for k in ("job_id", "tasks", "submitted_by")} == {
            "job_id": "130",
            "tasks": 1,
            "submitted_by": "ann",
        }
        assert job["submitted_at"].endswith("Z")
        listed = client.get("/api/v1/studies", params={"limit": 100}).json()["data"]
        assert next(s for s in listed if s["id"] == builtin)["slurm_job"] == job
        assert next(s for s in listed if s["id"] == studies[1])["slurm_job"] is None
