"""Submitting studies: networks too large for the service, retried submissions, paging
bounds. On SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.client import HpsClient
from service.settings import Settings

SPEC: dict[str, Any] = {
    "name": "submit",
    "dataset": "digits",
    "search": {"sampler": "random", "n_trials": 2},
    "training": {"epochs": 1},
}


@pytest.fixture
def client(migrated_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=migrated_url, max_params=1_000_000)
    with TestClient(create_app(settings, recover=False)) as c:
        yield c


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"training": {"hidden": [4096, 4096]}}, ["body", "training", "hidden"]),
        (
            {
                "search": {
                    "space": {"hidden": {"type": "layers", "depth": [1, 16], "units": [4, 65536]}}
                }
            },
            ["body", "search", "space", "hidden"],
        ),
    ],
    ids=["training.hidden", "search.space.hidden"],
)
def test_a_network_over_max_params_is_422_naming_the_field(
    client: TestClient, change: dict[str, Any], field: list[str]
) -> None:
    spec = copy.deepcopy(SPEC)
    for key, value in change.items():
        spec[key] = spec.get(key, {}) | value
    r = client.post("/api/v1/studies", json=spec)
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == field and "HPS_MAX_PARAMS" in error["msg"]
    assert client.get("/api/v1/studies").json()["count"] == 0  # nothing stored


def test_a_retried_submission_does_not_duplicate_the_study(client: TestClient) -> None:
    headers = {"Idempotency-Key": "same-request"}
    first = client.post("/api/v1/studies", json=SPEC, headers=headers)
    again = client.post("/api/v1/studies", json=SPEC, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    other = client.post("/api/v1/studies", json=SPEC | {"name": "other"}, headers=headers)
    assert other.status_code == 409 and "same-request" in other.json()["detail"]
    assert client.get("/api/v1/studies").json()["count"] == 1


def test_huge_offsets_are_422_not_500(client: TestClient) -> None:
    for path in ("/api/v1/studies", "/api/v1/workers"):
        r = client.get(path, params={"offset": 2**63})
        assert r.status_code == 422, r.text


def test_the_client_resends_a_lost_submission_with_the_same_key() -> None:
    keys: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        if len(keys) == 1:
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return httpx.Response(201, json={"id": 7})

    client = HpsClient("http://hps.test")
    client._http = httpx.Client(base_url="http://hps.test", transport=httpx.MockTransport(answer))
    assert client.create_study(SPEC) == {"id": 7}
    assert len(keys) == 2 and keys[0] == keys[1]
