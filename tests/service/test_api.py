"""REST API on a real database (SQLite and PostgreSQL): 201/404/409/422, reads."""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings

VALID: dict[str, Any] = {
    "name": "api-test",
    "dataset": "iris",
    "search": {
        "sampler": "random",
        "n_trials": 3,
        "parallelism": 1,
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}},
    },
    "training": {"epochs": 2},
}


@pytest.fixture
def client(migrated_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=migrated_url), recover=False)
    with TestClient(app) as c:
        yield c


def _with(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(VALID)
    node = spec
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return spec


class _Delete:
    def __repr__(self) -> str:
        return "<deleted>"


_DELETE = _Delete()
LR = "search.space.lr"

# (field path to change, bad value, text the 422 must contain: the field's name)
INVALID = [
    ("name", "", "name"),
    ("name", _DELETE, "name"),
    ("dataset", "mnist-nope", "dataset"),
    ("model", "transformer", "model"),
    ("bogus_field", 1, "bogus_field"),
    ("search.sampler", "annealing", "sampler"),
    ("search.n_trials", 0, "n_trials"),
    ("search.n_trials", 10001, "n_trials"),
    ("search.parallelism", 0, "parallelism"),
    ("search.seed", -1, "seed"),
    ("search.space.lr", {"type": "float", "low": 1.0, "high": 0.1}, "lr"),
    ("search.space.lr", {"type": "float", "low": 0.0, "high": 1.0, "log": True}, "lr"),
    ("search.space.lr", {"type": "float", "low": -1e-3, "high": 1.0, "log": True}, "lr"),
    ("search.space.lr", {"type": "float", "low": 1e-3}, "lr"),
    ("search.space.lr", {"type": "float", "low": 1e-3, "high": 1, "extra": 1}, "extra"),
    ("search.space.keep_prob", {"type": "float", "low": 0.0, "high": 1.0}, "keep_prob"),
    ("search.space.keep_prob", {"type": "float", "low": 0.5, "high": 1.5}, "keep_prob"),
    ("search.space.momentum", {"type": "float", "low": 0.5, "high": 2.0}, "momentum"),
    ("search.space.activation", {"type": "categorical", "choices": ["gelu"]}, "activation"),
    ("search.space.hidden", {"type": "layers", "depth": [3, 1], "units": [8, 64]}, "depth"),
    ("search.space.hidden", {"type": "layers", "depth": [1, 2], "units": [0, 64]}, "units"),
    ("search.space.warp_drive", {"type": "float", "low": 1, "high": 2}, "warp_drive"),
    ("search.space.lr", {"type": "categorical", "choices": ["fast"]}, "lr"),
    ("search.space.lr", {"type": "int", "low": 1, "high": 2}, "lr"),
    ("training.epochs", 0, "epochs"),
    ("training.epochs", 1001, "epochs"),
    ("training.keep_prob", 0.0, "keep_prob"),
    ("training.keep_prob", 1.2, "keep_prob"),
    ("training.batch_size", 0, "batch_size"),
    ("training.optimizer", "lbfgs", "optimizer"),
    ("training.lr", 0, "lr"),
    ("training.hidden", [], "hidden"),
    ("pruning.divergence_factor", 1.0, "divergence_factor"),
    ("pruning.pruner", "oracle", "pruner"),
    ("objective.metric", "f1", "metric"),
    ("objective.direction", "maximize", "direction"),
    ("dataset", {"name": "iris", "split": [0.5, 0.5, 0.5]}, "split"),
    ("dataset", {"name": "iris", "seed": 2**40}, "seed"),
    ("search.seed", 2**70, "seed"),
    ("search.space.lr", {"type": "float", "low": math.nan, "high": 1.0}, "low"),
    ("search.space.keep_prob", {"type": "float", "values": [math.inf]}, "values"),
    ("training.lr", math.inf, "lr"),
    ("training.hidden", [2**40], "hidden"),
    ("search.space.hidden", {"type": "layers", "values": [[64] * 17]}, "hidden"),
]


@pytest.mark.parametrize(
    ("path", "value", "field"), INVALID, ids=[f"{p}={v}" for p, v, _ in INVALID]
)
def test_invalid_spec_is_422_naming_the_field(
    client: TestClient, path: str, value: Any, field: str
) -> None:
    before = client.get("/api/v1/studies").json()["count"]
    body = json.dumps(_with(path, value))  # NaN/inf too, as a careless client sends them
    r = client.post("/api/v1/studies", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    text = " ".join(".".join(map(str, d["loc"])) + " " + d["msg"] for d in detail)
    assert field in text, text
    assert client.get("/api/v1/studies").json()["count"] == before  # nothing half-written


def test_regression_dataset_cannot_maximise_accuracy(client: TestClient) -> None:
    spec = _with("dataset", "diabetes") | {"objective": {"metric": "dev_accuracy"}}
    r = client.post("/api/v1/studies", json=spec)
    assert r.status_code == 422 and "dev_accuracy" in r.text


def test_grid_needs_points(client: TestClient) -> None:
    spec = _with("search.sampler", "grid")
    r = client.post("/api/v1/studies", json=spec)
    assert r.status_code == 422 and "search.space.lr" in r.text


def test_create_read_list_cancel(client: TestClient) -> None:
    r = client.post("/api/v1/studies", json=VALID)
    assert r.status_code == 201, r.text
    study = r.json()
    assert study["status"] == "queued" and study["n_trials"] == 3
    assert study["counts"] == {"running": 0, "complete": 0, "pruned": 0, "fail": 0}
    assert study["best"] is None and study["created_at"].endswith("Z")
    assert study["spec"]["search"]["space"]["lr"]["log"] is True

    got = client.get(f"/api/v1/studies/{study['id']}").json()
    assert got["id"] == study["id"] and got["name"] == "api-test"
    client.post("/api/v1/studies", json=_with("name", "second"))
    page = client.get("/api/v1/studies", params={"limit": 1}).json()
    assert page["count"] == 2 and [s["name"] for s in page["data"]] == ["second"]
    assert client.get("/api/v1/studies", params={"limit": 0}).status_code == 422

    assert client.get(f"/api/v1/studies/{study['id']}/leaderboard").json()["data"] == []
    r = client.post(f"/api/v1/studies/{study['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = client.post(f"/api/v1/studies/{study['id']}/cancel")
    assert r.status_code == 409 and "already cancelled" in r.json()["detail"]


def test_unknown_ids_are_404(client: TestClient) -> None:
    assert client.get("/api/v1/studies/999").json() == {"detail": "study 999 not found"}
    for path in ("/api/v1/studies/999/leaderboard", "/api/v1/studies/999/trials/0"):
        assert client.get(path).status_code == 404
    assert client.post("/api/v1/studies/999/cancel").status_code == 404
    sid = client.post("/api/v1/studies", json=VALID).json()["id"]
    assert client.get(f"/api/v1/studies/{sid}/trials/5").status_code == 404
    assert client.get("/api/v1/studies/abc").status_code == 422
    assert client.get("/api/v1/studies/99999999999999999999").status_code == 422
    assert client.get(f"/api/v1/studies/{sid}/trials/-1").status_code == 404  # no such path


def test_health_docs_and_workers(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/api/v1/health").json()["database"] == "ok"
    assert client.get("/docs").status_code == 200
    assert "/api/v1/studies" in client.get("/openapi.json").json()["paths"]
    assert client.get("/api/v1/workers").json() == {"data": [], "count": 0}


def test_malformed_body_is_422(client: TestClient) -> None:
    r = client.post(
        "/api/v1/studies", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


def test_api_recovers_lost_trials_with_no_worker_alive(migrated_url: str) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from search import store

    app = create_app(Settings(database_url=migrated_url, grace_period=1.0, heartbeat_interval=0.5))
    factory = store.make_session_factory(migrated_url)
    with TestClient(app) as c:
        sid = c.post("/api/v1/studies", json=VALID).json()["id"]
        with store.session_scope(factory) as s:  # a worker claims, then dies silently
            claim = store.claim_slot(session=s, study_id=sid)
            row_id = store.insert_trial(
                session=s, claim=claim, worker_id=None, number=None, optuna_trial_id=None, params={}
            )
            s.execute(
                update(store.TrialRow)
                .where(store.TrialRow.id == row_id)
                .values(heartbeat_at=store.utcnow() - timedelta(seconds=5))
            )
        deadline = time.monotonic() + 60
        while c.get(f"/api/v1/studies/{sid}").json()["counts"]["fail"] == 0:
            assert time.monotonic() < deadline, "the API never recovered the lost trial"
            time.sleep(0.1)
        study = c.get(f"/api/v1/studies/{sid}").json()
    assert study["counts"] == {"running": 0, "complete": 0, "pruned": 0, "fail": 1}
    with store.session_scope(factory) as s:
        row = store.get_study(session=s, study_id=sid)
        assert (row.claimed, row.running) == (0, 0)  # its budget is free for a retry


def test_a_405_allows_every_method_the_path_answers(client: TestClient) -> None:
    """Starlette's 405 names the methods of the first route matching the path only (GET
    /api/v1/studies hid POST); the Allow header lists every documented method."""
    paths = client.get("/openapi.json").json()["paths"]
    for template, operations in paths.items():
        path = template.replace("{study_id}", "1").replace("{number}", "1")
        path = path.replace("{dataset_id}", "1").replace("{key_id}", "1")
        assert "{" not in path, template
        documented = {method.upper() for method in operations}
        unused = next(m for m in ("PUT", "DELETE", "PATCH", "POST") if m not in documented)
        r = client.request(unused, path)
        assert r.status_code == 405, (unused, path, r.status_code)
        allowed = {m.strip() for m in r.headers["allow"].split(",")}
        assert documented <= allowed, (template, documented, allowed)
    page = client.request("PUT", "/studies/1", headers={"Accept": "text/html"})
    assert page.status_code == 405 and page.headers["allow"] == "GET"
    assert client.request("DELETE", "/api/v1/studies").headers["allow"] == "GET, POST"
