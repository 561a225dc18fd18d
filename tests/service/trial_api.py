"""What the REST trial API tests share: an own-code spec, the API in this process, and one
helper per call (claim, report, the other trial calls)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings

EXTERNAL: dict[str, Any] = {
    "name": "own-code",
    "model": "external",
    "objective": {"metric": "val_auc", "direction": "maximize"},
    "search": {
        "sampler": "random",
        "n_trials": 4,
        "parallelism": 2,
        "seed": 7,
        "space": {
            "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "width": {"type": "int", "low": 8, "high": 64, "log": True},
            "act": {"type": "categorical", "choices": ["relu", "gelu"]},
            "hidden": {"type": "layers", "depth": [1, 3], "units": [8, 64]},
        },
    },
}


@contextmanager
def api_client(db_url: str) -> Iterator[TestClient]:
    """The API in this process on ``db_url`` (no recovery pass at start)."""
    app = create_app(Settings(database_url=db_url), recover=False)
    with TestClient(app) as c:
        yield c


def submit(client: TestClient, **changes: Any) -> int:
    spec = copy.deepcopy(EXTERNAL)
    for path, value in changes.items():
        node = spec
        *parents, leaf = path.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    r = client.post("/api/v1/studies", json=spec)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def claim(client: TestClient, study_id: int) -> dict[str, Any]:
    r = client.post(f"/api/v1/studies/{study_id}/trials/claim", json={"client": "test:1"})
    assert r.status_code == 200, r.text
    return dict(r.json())


def call(client: TestClient, study_id: int, trial: dict[str, Any], what: str, **body: Any) -> Any:
    url = f"/api/v1/studies/{study_id}/trials/{trial['number']}/{what}"
    text = json.dumps({"lease": trial["lease"], **body})  # NaN/Infinity as JSON's tokens
    return client.post(url, content=text, headers={"Content-Type": "application/json"})


def report(client: TestClient, study_id: int, trial: dict[str, Any], epoch: int, **m: Any) -> Any:
    return call(client, study_id, trial, "report", epoch=epoch, metrics=m)
