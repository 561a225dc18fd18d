"""Keys, owned studies (with a kept model) and datasets, for the access and outage tests."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update

from search import store
from service.keys import create_key
from tests.study_data import Made, make_study, params


@dataclass(frozen=True)
class Keys:
    alice: str  # owns the studies under test
    bob: str  # another user
    root: str  # an admin


def make_keys(url: str) -> Keys:
    return Keys(
        alice=create_key(url, "alice"),
        bob=create_key(url, "bob"),
        root=create_key(url, "root", admin=True),
    )


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def owned_study(factory: Any, owner: str | None, *, public: bool = False) -> int:
    """A study of ``owner`` with one complete trial (number 0) and one running."""
    study_id = make_study(factory, [Made("COMPLETE", 0.5, params(0.01))], running=1)
    with store.session_scope(factory) as s:
        s.execute(
            update(store.StudyRow)
            .where(store.StudyRow.id == study_id)
            .values(owner=owner, public=public)
        )
    return study_id


def keep_a_model(factory: Any, study_id: int) -> None:
    """Keep trial 0's (made-up) weights, as a worker does, so the study has a model."""
    with store.session_scope(factory) as s:
        trial = store.get_trial(session=s, study_id=study_id, number=0)
        assert trial is not None and trial.value is not None
        store.lock_study(session=s, study_id=study_id)
        store.keep_model(
            session=s,
            study_id=study_id,
            direction="minimize",
            trial_row_id=trial.id,
            number=0,
            value=trial.value,
            config={"format": "test"},
            weights=b"weights",
        )


def owned_dataset(factory: Any, owner: str | None) -> int:
    """A stored dataset of ``owner`` (its own bytes)."""
    data = uuid.uuid4().bytes
    values = {
        "name": f"d{uuid.uuid4().hex}",
        "owner": owner,
        "sha256": hashlib.sha256(data).hexdigest(),
        "filename": "d.csv",
        "format": "csv",
        "size_bytes": len(data),
        "target": "y",
        "task": "classification",
        "task_inferred": True,
        "impute": False,
        "n_rows": 40,
        "n_columns": 2,
        "summary": {"columns": [], "target": {}, "shape": [1, 2]},
    }
    with store.session_scope(factory) as s:
        return store.insert_dataset(session=s, data=data, values=values).id


__all__ = ["Keys", "bearer", "keep_a_model", "make_keys", "owned_dataset", "owned_study"]
