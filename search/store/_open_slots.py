"""A study's open slots: how many more trials could start now. What an autoscaler asks the
database (KEDA's PostgreSQL trigger of ``hpsearch k8s render --keda``) before it starts
more workers.

A claim needs budget (``claimed < n_trials``) and a free running slot (``running <
parallelism``) on a queued or running study (``search.store.claim_slot``); a slot handed
back for a retry gives its budget unit back, so it counts as open again. The open slots
are therefore ``min(n_trials - claimed, parallelism - running)`` while the study is
queued or running, and 0 once it has ended. The query always answers one row: 0 for a
study that has ended or does not exist.
"""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.dialects import postgresql

from search.store._tables import ACTIVE_STUDY_STATES, StudyRow


def open_slots_query(study_id: int) -> Select[tuple[int]]:
    """The query (PostgreSQL: it uses ``GREATEST``/``LEAST``) for ``study_id``'s open slots."""
    if isinstance(study_id, bool) or not isinstance(study_id, int) or study_id < 1:
        raise ValueError(f"a study id is a positive integer, got {study_id!r}")
    room = func.least(StudyRow.n_trials - StudyRow.claimed, StudyRow.parallelism - StudyRow.running)
    return select(func.coalesce(func.max(func.greatest(room, 0)), 0)).where(
        StudyRow.id == study_id, StudyRow.status.in_(ACTIVE_STUDY_STATES)
    )


def open_slots_sql(study_id: int) -> str:
    """:func:`open_slots_query` as one line of PostgreSQL, values inlined (the id is an
    integer and the states are constants, so nothing outside can reach the text)."""
    compiled = open_slots_query(study_id).compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    return " ".join(str(compiled).split())


__all__ = ["open_slots_query", "open_slots_sql"]
