"""The reads a request makes before its route runs (who is calling, who owns the study),
each one statement on a connection of the access engine (:func:`access_engine`), given
back at once: a request never holds two pooled connections, and on PostgreSQL the read is
one round trip (autocommit, no ping)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, bindparam, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from search.store._tables import StudyRow


def first_row(engine: Engine, stmt: Executable, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """The first row ``stmt`` answers on a connection of ``engine``. Once more on a fresh
    connection when the server had dropped the first (a restart): the access engine does
    not ping before use."""
    for attempt in (1, 2):
        try:
            with engine.connect() as connection:
                row = connection.execute(stmt, params).first()
            return tuple(row) if row is not None else None
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class StudyOwner:
    """What an access check needs of a study: who owns it, whether it is public."""

    id: int
    owner: str | None
    public: bool


# Built once, in Core: a statement built per call costs more CPU than the query itself.
_STUDIES = StudyRow.__table__.c
_STUDY_OWNER = select(_STUDIES.id, _STUDIES.owner, _STUDIES.public).where(
    _STUDIES.id == bindparam("study_id")
)


def read_study_owner(engine: Engine, *, study_id: int) -> StudyOwner | None:
    """Study ``study_id``'s owner and visibility, or None if there is no such study (its
    spec and counts are not read)."""
    row = first_row(engine, _STUDY_OWNER, {"study_id": study_id})
    return StudyOwner(row[0], row[1], bool(row[2])) if row is not None else None


__all__ = ["StudyOwner", "first_row", "read_study_owner"]
