"""What a reader sees of a study's progress and of a stuck one, on both backends: the API's
``slots`` (a retried slot counted once) and ``waiting``, the CLI's sentences made from
that JSON, the pages' banner and badge, and the study's version (ETag) moving when
``waiting`` flips. Time is moved by ageing rows, never by sleeping."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import delete, update

from search import store
from search.spec import ExperimentSpec
from service._cli_studies import progress_line, status_lines, studies_table
from tests.study_data import SPEC

WAITING_LINE = "waiting for a worker: no live worker can serve this study"


@pytest.fixture
def client(module_client: TestClient) -> TestClient:
    """The app (grace period 30 s) with no worker registered: workers serve every study."""
    with store.session_scope(module_client.app.state.session_factory) as s:  # type: ignore[attr-defined]
        s.execute(delete(store.WorkerRow))
    return module_client


def _factory(client: TestClient) -> Any:
    return client.app.state.session_factory  # type: ignore[attr-defined]


def _study(client: TestClient, n_trials: int) -> int:
    spec = {**SPEC, "search": {**SPEC["search"], "n_trials": n_trials, "parallelism": n_trials}}
    data = ExperimentSpec.model_validate(spec).model_dump(mode="json")
    with store.session_scope(_factory(client)) as s:
        row = store.insert_study(
            session=s, spec=data, optuna_study_name=f"w-{uuid.uuid4().hex}", n_trials=n_trials
        )
        return row.id


def _age(client: TestClient, study_id: int) -> None:
    with store.session_scope(_factory(client)) as s:
        s.execute(
            update(store.StudyRow)
            .where(store.StudyRow.id == study_id)
            .values(created_at=store.utcnow() - timedelta(minutes=10))
        )


def _claim(client: TestClient, study_id: int, number: int) -> int:
    with store.session_scope(_factory(client)) as s:
        claim = store.claim_slot(session=s, study_id=study_id)
        assert claim is not None
        return store.insert_trial(
            session=s,
            claim=claim,
            worker_id=None,
            number=number,
            optuna_trial_id=None,
            params={"lr": 0.01, "keep_prob": 0.9, "hidden": [32]},
        )


def _end(client: TestClient, row_id: int, state: str, *, retry: bool = False) -> None:
    with store.session_scope(_factory(client)) as s:
        store.lock_study(session=s, study_id=s.get(store.TrialRow, row_id).study_id)
        trial = store.lock_running_trial(session=s, trial_row_id=row_id)
        assert trial is not None
        values = {"value": 0.5, "reason": "worker lost (no heartbeat)" if retry else None}
        store.finish_trial(session=s, trial=trial, state=state, values=values, retry=retry)


def test_a_retried_slot_counts_once_in_the_api_and_the_cli(client: TestClient) -> None:
    sid = _study(client, n_trials=24)
    rows = [_claim(client, sid, n) for n in range(24)]
    for lost in rows[:2]:  # two attempts lose their worker; their slots run again
        _end(client, lost, store.T_FAIL, retry=True)
    rows = rows[2:] + [_claim(client, sid, n) for n in (24, 25)]
    for i, row_id in enumerate(rows):
        _end(client, row_id, store.T_PRUNED if i < 3 else store.T_COMPLETE)

    study = client.get(f"/api/v1/studies/{sid}").json()
    assert study["status"] == "completed" and study["waiting"] is False
    assert study["slots"] == {
        "done": 24,
        "complete": 21,
        "pruned": 3,
        "failed": 0,
        "running": 0,
        "lost_retried": 2,
    }
    assert study["counts"] == {"running": 0, "complete": 21, "pruned": 3, "fail": 2}  # attempts
    sentence = "24/24 done (21 complete, 3 pruned); 2 lost attempts retried"
    assert f"trials: {sentence} · running 0, parallelism 24" in status_lines(study)
    assert progress_line(study).startswith(f"{sentence} · running 0 · best ")
    listed = client.get("/api/v1/studies", params={"limit": 500}).json()
    out = Console(width=250, record=True)
    out.print(studies_table(listed))
    assert " 24/24 " in out.export_text() and "26/24" not in out.export_text()
    page = client.get(f"/studies/{sid}").text
    assert "24/24 done" in page and "2 lost attempts retried" in page


def test_a_study_no_live_worker_can_serve_says_it_is_waiting(client: TestClient) -> None:
    sid = _study(client, n_trials=4)
    fresh = client.get(f"/api/v1/studies/{sid}")
    assert fresh.json()["waiting"] is False  # just submitted: not stuck
    _age(client, sid)

    stuck = client.get(f"/api/v1/studies/{sid}")
    assert stuck.json()["waiting"] is True and stuck.headers["ETag"] != fresh.headers["ETag"]
    lines = status_lines(stuck.json())
    assert lines[:2] == [f"study {sid} (made-up): queued", WAITING_LINE]
    assert progress_line(stuck.json()).endswith(" · waiting for a worker")
    page = client.get(f"/studies/{sid}").text
    assert 'id="waiting"' in page and "Waiting for a worker:" in page
    listing = client.get("/").text
    assert f'<tr data-study="{sid}">' in listing and "badge-waiting" in listing
    listed = client.get("/api/v1/studies", params={"limit": 500}).json()["data"]
    assert next(s for s in listed if s["id"] == sid)["waiting"] is True
    # A cached answer must not hide the change: the same If-None-Match now gets a 200.
    etag = stuck.headers["ETag"]
    assert client.get(f"/api/v1/studies/{sid}", headers={"If-None-Match": etag}).status_code == 304

    with store.session_scope(_factory(client)) as s:
        store.register_worker(
            session=s, name="w", host="box", pid=1, device="cpu", serves_study=sid + 1000
        )
    again = client.get(f"/api/v1/studies/{sid}", headers={"If-None-Match": etag})
    assert again.status_code == 304  # a worker for another study only: still waiting
    with store.session_scope(_factory(client)) as s:
        store.register_worker(session=s, name="any", host="box", pid=2, device="cpu")
    served = client.get(f"/api/v1/studies/{sid}", headers={"If-None-Match": etag})
    assert served.status_code == 200 and served.json()["waiting"] is False
    assert WAITING_LINE not in status_lines(served.json())
    assert 'id="waiting"' not in client.get(f"/studies/{sid}").text
