"""The REST trial API on a real database (SQLite and PostgreSQL): claim, report -> decision,
heartbeat, complete, fail; leases, reaping and re-delivery, grid slots, bad input. How a
report is judged: ``test_trial_judging.py``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from search import store
from search.lifecycle import CLIENT_LOST_REASON, reap_lost_trials
from tests.service.trial_api import EXTERNAL, api_client, call, claim, report, submit


@pytest.fixture
def client(migrated_url: str) -> Iterator[TestClient]:
    with api_client(migrated_url) as c:
        yield c


def test_a_trial_is_claimed_reported_and_completed(client: TestClient) -> None:
    sid = submit(client)
    trial = claim(client, sid)
    params = trial["params"]
    assert set(params) == {"lr", "width", "act", "hidden"}
    assert 1e-4 <= params["lr"] <= 1e-1 and 8 <= params["width"] <= 64
    assert params["act"] in ("relu", "gelu")
    assert 1 <= len(params["hidden"]) <= 3 and all(8 <= u <= 64 for u in params["hidden"])
    assert trial["objective"] == {"metric": "val_auc", "direction": "maximize"}
    assert trial["loss_metric"] == "train_loss" and trial["lease"]
    assert trial["heartbeat_s"] < trial["grace_s"]
    for epoch, (loss, auc) in enumerate([(0.69, 0.5), (0.5, 0.7), (0.4, 0.8)]):
        r = report(client, sid, trial, epoch, train_loss=loss, val_auc=auc)
        assert r.status_code == 200 and r.json() == {"decision": "continue", "reason": None}
    assert call(client, sid, trial, "heartbeat").json()["decision"] == "continue"
    r = call(client, sid, trial, "complete", metrics={"val_auc": 0.81, "val_loss": 0.38})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "number": trial["number"],
        "state": "COMPLETE",
        "value": 0.81,
        "retried": False,
    }
    shown = client.get(f"/api/v1/studies/{sid}/trials/{trial['number']}").json()
    assert shown["state"] == "COMPLETE" and shown["value"] == 0.81
    assert shown["params"] == params
    assert shown["curves"] == {
        "epoch": [0, 1, 2],
        "train_loss": [0.69, 0.5, 0.4],
        "val_auc": [0.5, 0.7, 0.8],
    }
    assert shown["metrics"] == {"train_loss": 0.4, "val_auc": 0.81, "val_loss": 0.38}
    assert shown["epochs_run"] == 2
    board = client.get(f"/api/v1/studies/{sid}/leaderboard").json()
    assert [row["number"] for row in board["data"]] == [trial["number"]]
    study = client.get(f"/api/v1/studies/{sid}").json()
    assert study["counts"]["complete"] == 1 and study["best"]["value"] == 0.81


def test_epochs_run_is_the_last_reported_epoch(client: TestClient) -> None:
    sid = submit(client)
    trial = claim(client, sid)
    for epoch in (0, 5, 10):
        report(client, sid, trial, epoch, train_loss=1.0, val_auc=0.5)
    shown = client.get(f"/api/v1/studies/{sid}/trials/{trial['number']}").json()
    assert shown["epochs_run"] == 10 and shown["curves"]["epoch"] == [0, 5, 10]


def test_calls_are_idempotent_for_the_same_lease(client: TestClient) -> None:
    sid = submit(client)
    trial = claim(client, sid)
    for _ in range(2):
        assert report(client, sid, trial, 0, train_loss=1.0, val_auc=0.5).status_code == 200
    # an earlier epoch sent again is judged on what was stored, and stored once
    report(client, sid, trial, 1, train_loss=0.9, val_auc=0.6)
    again = report(client, sid, trial, 0, train_loss=99.0, val_auc=0.0)
    assert again.json()["decision"] == "continue"
    shown = client.get(f"/api/v1/studies/{sid}/trials/{trial['number']}").json()
    assert shown["curves"]["epoch"] == [0, 1] and shown["curves"]["train_loss"] == [1.0, 0.9]
    first = call(client, sid, trial, "complete", metrics={"val_auc": 0.6})
    second = call(client, sid, trial, "complete", metrics={"val_auc": 0.6})
    assert first.status_code == second.status_code == 200 and first.json() == second.json()
    other = claim(client, sid)
    failed = [call(client, sid, other, "fail", reason="boom", retry=False) for _ in range(2)]
    assert [r.status_code for r in failed] == [200, 200]
    assert (
        failed[0].json()
        == failed[1].json()
        == {
            "number": other["number"],
            "state": "FAIL",
            "value": None,
            "retried": False,
        }
    )


def test_no_free_slot_is_204_and_an_ended_study_409(client: TestClient) -> None:
    sid = submit(client, search__n_trials=2, search__parallelism=1)
    first = claim(client, sid)
    busy = client.post(f"/api/v1/studies/{sid}/trials/claim")
    assert busy.status_code == 204 and int(busy.headers["Retry-After"]) >= 1
    call(client, sid, first, "complete", metrics={"val_auc": 0.5})
    second = claim(client, sid)
    assert client.post(f"/api/v1/studies/{sid}/trials/claim").status_code == 204
    call(client, sid, second, "complete", metrics={"val_auc": 0.6})
    ended = client.post(f"/api/v1/studies/{sid}/trials/claim")
    assert ended.status_code == 409 and "completed" in ended.json()["detail"]
    assert client.get(f"/api/v1/studies/{sid}").json()["status"] == "completed"


def test_a_failed_attempt_handed_back_runs_its_slot_again_with_the_same_parameters(
    client: TestClient,
) -> None:
    sid = submit(client, search__n_trials=1, search__parallelism=1)
    first = claim(client, sid)
    r = call(client, sid, first, "fail", reason="interrupted (client stopped)", retry=True)
    assert r.json()["retried"] is True
    again = claim(client, sid)
    assert again["slot"] == first["slot"] and again["params"] == first["params"]
    assert again["number"] != first["number"] and again["lease"] != first["lease"]
    assert call(client, sid, first, "heartbeat").status_code == 409


def test_a_silent_client_is_reaped_its_configuration_redelivered_and_its_late_calls_409(
    client: TestClient, migrated_url: str
) -> None:
    sid = submit(client, search__n_trials=2, search__parallelism=2)
    lost, kept = claim(client, sid), claim(client, sid)
    report(client, sid, lost, 0, train_loss=1.0, val_auc=0.5)
    factory = store.make_session_factory(migrated_url)
    assert reap_lost_trials(session_factory=factory, grace_s=0.0) == 2  # both, by the clock
    shown = client.get(f"/api/v1/studies/{sid}/trials/{lost['number']}").json()
    assert shown["state"] == "FAIL" and shown["prune_reason"] == CLIENT_LOST_REASON
    again = [claim(client, sid), claim(client, sid)]
    assert sorted((t["slot"], str(t["params"])) for t in again) == sorted(
        (t["slot"], str(t["params"])) for t in (lost, kept)
    )
    for what, body in [
        ("report", {"epoch": 1, "metrics": {"val_auc": 0.99}}),
        ("heartbeat", {}),
        ("complete", {"metrics": {"val_auc": 0.99}}),
        ("fail", {"reason": "late"}),
    ]:
        r = call(client, sid, lost, what, **body)
        assert r.status_code == 409 and "no longer running" in r.json()["detail"], r.text
    shown_after = client.get(f"/api/v1/studies/{sid}/trials/{lost['number']}").json()
    assert shown_after == shown
    assert client.get(f"/api/v1/studies/{sid}").json()["counts"]["complete"] == 0


def test_a_grid_study_hands_out_every_point_exactly_once(client: TestClient) -> None:
    space = {
        "lr": {"type": "float", "values": [0.1, 0.01, 0.001]},
        "act": {"type": "categorical", "choices": ["relu", "gelu"]},
    }
    sid = submit(client, search={"sampler": "grid", "parallelism": 6, "space": space})
    trials = [claim(client, sid) for _ in range(6)]
    assert client.post(f"/api/v1/studies/{sid}/trials/claim").status_code == 204
    points = sorted((t["params"]["lr"], t["params"]["act"]) for t in trials)
    assert points == sorted((lr, a) for lr in (0.1, 0.01, 0.001) for a in ("relu", "gelu"))
    for t in trials:
        call(client, sid, t, "complete", metrics={"val_auc": t["params"]["lr"]})
    assert client.post(f"/api/v1/studies/{sid}/trials/claim").status_code == 409


def test_a_cancelled_study_refuses_claims_and_ends_its_running_trials(client: TestClient) -> None:
    sid = submit(client)
    trial = claim(client, sid)
    assert client.post(f"/api/v1/studies/{sid}/cancel").status_code == 200
    r = report(client, sid, trial, 0, train_loss=1.0)
    assert r.status_code == 409 and "cancelled" in r.json()["detail"]
    shown = client.get(f"/api/v1/studies/{sid}/trials/{trial['number']}").json()
    assert shown["state"] == "FAIL" and shown["prune_reason"] == "cancelled"
    assert client.post(f"/api/v1/studies/{sid}/trials/claim").status_code == 409


def test_workers_never_claim_external_studies_nor_clients_built_in_ones(
    client: TestClient, migrated_url: str
) -> None:
    sid = submit(client)
    builtin = {"name": "b", "dataset": "iris", "search": {"n_trials": 2}}
    bid = client.post("/api/v1/studies", json=builtin).json()["id"]
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        assert store.claimable_studies(session=s) == [bid]
        assert store.claim_slot(session=s, study_id=sid) is None
    r = client.post(f"/api/v1/studies/{bid}/trials/claim")
    assert r.status_code == 409 and "built-in model" in r.json()["detail"]


def _detail(r: Any) -> list[tuple[list[str], str]]:
    return [(d["loc"], d["msg"]) for d in r.json()["detail"]]


def test_bad_input_is_a_4xx_naming_the_problem_and_changes_nothing(client: TestClient) -> None:
    sid = submit(client)
    trial = claim(client, sid)
    report(client, sid, trial, 3, train_loss=1.0, val_auc=0.5)
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("report", {"epoch": 4, "metrics": {"val_auc": "high"}}, 422, "metrics"),
        ("report", {"epoch": 4, "metrics": {"val_auc": True}}, 422, "metrics"),
        ("report", {"epoch": 4, "metrics": {"val auc": 1}}, 422, "metrics"),
        ("report", {"epoch": 4, "metrics": {"epoch": 1}}, 422, "metrics"),
        ("report", {"epoch": -1, "metrics": {}}, 422, "epoch"),
        ("report", {"epoch": 2, "metrics": {"val_auc": 0.6}}, 422, "epoch"),
        ("report", {"metrics": {}}, 422, "epoch"),
        ("complete", {"metrics": {"val_loss": 0.3}}, 422, "metrics"),
        ("fail", {"reason": ""}, 422, "reason"),
    ]
    for what, body, code, field in cases:
        r = call(client, sid, trial, what, **body)
        assert r.status_code == code, (what, body, r.text)
        assert any(field in loc for loc, _ in _detail(r)), (what, body, r.text)
    backwards = call(client, sid, trial, "report", epoch=2, metrics={"val_auc": 0.6})
    assert "goes backwards" in backwards.text and "last reported epoch 3" in backwards.text
    missing = call(client, sid, trial, "complete", metrics={"val_loss": 0.3})
    assert "'val_auc' is missing" in missing.text
    wrong = client.post(
        f"/api/v1/studies/{sid}/trials/{trial['number']}/report",
        json={"lease": "not-the-lease", "epoch": 4, "metrics": {}},
    )
    assert wrong.status_code == 409 and "lease" in wrong.json()["detail"]
    assert call(client, sid, {**trial, "number": 999}, "heartbeat").status_code == 404
    assert client.post("/api/v1/studies/999/trials/claim").status_code == 404
    extra = call(client, sid, trial, "heartbeat", surprise=1)
    assert extra.status_code == 422
    shown = client.get(f"/api/v1/studies/{sid}/trials/{trial['number']}").json()
    assert shown["state"] == "RUNNING" and shown["curves"]["epoch"] == [3]
    assert math.isclose(shown["metrics"]["val_auc"], 0.5)


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        ({"objective": None}, ["body", "objective"], "name the metric"),
        ({"objective": {"metric": "val_auc"}}, ["body", "objective"], "say whether"),
        ({"dataset": "iris"}, ["body", "dataset"], "leave dataset out"),
        (
            {"objective": {"metric": "epoch", "direction": "minimize"}},
            ["body", "objective", "metric"],
            "not a metric name",
        ),
        ({"training": {"epochs": 3}}, ["body", "training"], "leave training out"),
        (
            {"search": {"space": {"2fast": {"type": "float", "low": 0, "high": 1}}}},
            ["body", "search", "space"],
            "parameter name '2fast'",
        ),
    ],
)
def test_an_external_spec_with_a_part_it_cannot_use_is_422(
    client: TestClient, change: dict[str, Any], loc: list[str], words: str
) -> None:
    spec = {k: v for k, v in (EXTERNAL | change).items() if v is not None}
    r = client.post("/api/v1/studies", json=spec)
    assert r.status_code == 422, r.text
    assert any(d_loc == loc and words in msg for d_loc, msg in _detail(r)), r.text
    assert client.get("/api/v1/studies").json()["count"] == 0


@pytest.mark.parametrize("sampler", ["qmc", "tpe", "cmaes", "gp"])
def test_every_sampler_hands_out_parameters_in_the_space(client: TestClient, sampler: str) -> None:
    """Adaptive samplers suggest after the claim (in the API process), from what the
    study's ended trials scored; qmc draws slot k's Sobol point."""
    space = {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "width": {"type": "int", "low": 8, "high": 64},
    }
    sid = submit(
        client, search={"sampler": sampler, "n_trials": 6, "parallelism": 1, "space": space}
    )
    seen = []
    for _ in range(6):
        trial = claim(client, sid)
        lr, width = trial["params"]["lr"], trial["params"]["width"]
        assert 1e-4 <= lr <= 1e-1 and 8 <= width <= 64 and isinstance(width, int)
        shown = client.get(f"/api/v1/studies/{sid}/trials/{trial['number']}").json()
        assert shown["params"] == trial["params"]  # recorded on the trial's row too
        call(client, sid, trial, "complete", metrics={"val_auc": 1 - abs(math.log10(lr) + 2)})
        seen.append((lr, width))
    assert len(set(seen)) == 6
    assert client.get(f"/api/v1/studies/{sid}").json()["status"] == "completed"
