"""Keys, owned studies and an auth-on app for the access tests."""

from __future__ import annotations

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


__all__ = ["Keys", "bearer", "make_keys", "owned_study"]
