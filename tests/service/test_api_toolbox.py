"""Submitting toolbox options over HTTP: bad values are 422s naming the field, nothing is
stored; good ones are kept in the study's spec (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings

SPEC: dict[str, Any] = {"name": "toolbox", "dataset": "digits", "search": {"n_trials": 1}}


@pytest.fixture
def client(migrated_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=migrated_url), recover=False)) as c:
        yield c


@pytest.mark.parametrize(
    ("training", "field"),
    [
        ({"l1": -1}, "l1"),
        ({"batch_norm": "sometimes"}, "batch_norm"),
        ({"lr_schedule": "linear"}, "lr_schedule"),
        ({"clip_norm": 0}, "clip_norm"),
        ({"patience": 0}, "patience"),
    ],
)
def test_bad_option_is_422_naming_the_field(
    client: TestClient, training: dict[str, Any], field: str
) -> None:
    r = client.post("/api/v1/studies", json=SPEC | {"training": training})
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "training", field]]
    assert client.get("/api/v1/studies").json()["count"] == 0


def test_searched_bad_choice_is_422_and_good_options_are_kept(client: TestClient) -> None:
    space = {"batch_norm": {"type": "categorical", "choices": [1, 0]}}
    r = client.post("/api/v1/studies", json=SPEC | {"search": {"n_trials": 1, "space": space}})
    assert r.status_code == 422 and "batch_norm must be true or false" in r.text
    training = {"residual": True, "hidden": [64, 32, 32], "patience": 3, "optimizer": "adamw"}
    r = client.post("/api/v1/studies", json=SPEC | {"training": training})
    assert r.status_code == 201, r.text
    kept = r.json()["spec"]["training"]
    assert {k: kept[k] for k in training} == training
