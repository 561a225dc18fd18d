"""Study-level queries: insert, read, list, counts, leaderboard, cancel.

All functions take the session keyword-only and never commit: the caller's scope does.
Reads are indexed queries over hps_* tables, never a load of Optuna trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, func, or_, select, update
from sqlalchemy.orm import Session, defer

from search._external import EXTERNAL
from search.store._checkpoints import drop_checkpoints
from search.store._engine import utcnow
from search.store._tables import (
    ACTIVE_STUDY_STATES,
    CANCELLED,
    T_COMPLETE,
    StudyRow,
    TrialRow,
)


def insert_study(
    *,
    session: Session,
    spec: dict[str, Any],
    optuna_study_name: str,
    n_trials: int,
    owner: str | None = None,
) -> StudyRow:
    row = StudyRow(
        owner=owner,
        name=spec["name"],
        optuna_study_name=optuna_study_name,
        spec=spec,
        dataset=(spec.get("dataset") or {}).get("name") or "",
        model=spec.get("model") or "mlp",
        sampler=spec["search"]["sampler"],
        metric=spec["objective"]["metric"],
        direction=spec["objective"]["direction"],
        n_trials=n_trials,
        parallelism=spec["search"]["parallelism"],
    )
    session.add(row)
    session.flush()
    return row


def get_study(*, session: Session, study_id: int) -> StudyRow | None:
    return session.get(StudyRow, study_id)


ALL_OWNERS = object()  # list_studies(owner=ALL_OWNERS): every study (an admin's view)
NO_OWNER = object()  # list_studies(owner=NO_OWNER, public=True): the public studies only


def list_studies(
    *,
    session: Session,
    offset: int,
    limit: int,
    owner: str | None | object = ALL_OWNERS,
    public: bool = False,
) -> tuple[list[StudyRow], int]:
    """Newest first: ``owner``'s studies, and with ``public`` anyone's public ones too
    (``ALL_OWNERS``: every study; ``NO_OWNER``: nobody's own)."""
    where: list[ColumnElement[bool]] = []
    if owner is not ALL_OWNERS:
        mine = [] if owner is NO_OWNER else [StudyRow.owner == owner]
        shared = [StudyRow.public.is_(True)] if public else []
        where = [or_(*mine, *shared)] if mine or shared else [false()]
    count = session.scalar(select(func.count()).select_from(StudyRow).where(*where)) or 0
    rows = session.scalars(
        select(StudyRow).where(*where).order_by(StudyRow.id.desc()).offset(offset).limit(limit)
    ).all()
    return list(rows), count


def set_public(*, session: Session, study_id: int, public: bool) -> None:
    session.execute(update(StudyRow).where(StudyRow.id == study_id).values(public=public))


def trial_counts(*, session: Session, study_ids: list[int]) -> dict[int, dict[str, int]]:
    """Trials per state for each study: {study_id: {"RUNNING": n, "COMPLETE": n, ...}}."""
    counts: dict[int, dict[str, int]] = {sid: {} for sid in study_ids}
    if not study_ids:
        return counts
    stmt = (
        select(TrialRow.study_id, TrialRow.state, func.count())
        .where(TrialRow.study_id.in_(study_ids))
        .group_by(TrialRow.study_id, TrialRow.state)
    )
    for study_id, state, n in session.execute(stmt):
        counts[study_id][state] = n
    return counts


@dataclass(frozen=True)
class LeaderboardEntry:
    rank: int
    trial: TrialRow


def leaderboard(*, session: Session, study: StudyRow, top: int) -> list[LeaderboardEntry]:
    """Completed trials sorted by the objective (best first); ties by trial number. Their
    per-epoch curves are not loaded (the bulk of a row; no board shows them)."""
    order = TrialRow.value.asc() if study.direction == "minimize" else TrialRow.value.desc()
    stmt = (
        select(TrialRow)
        .options(defer(TrialRow.curves, raiseload=True))
        .where(
            TrialRow.study_id == study.id,
            TrialRow.state == T_COMPLETE,
            TrialRow.value.is_not(None),
        )
        .order_by(order, TrialRow.number.asc())
        .limit(top)
    )
    return [LeaderboardEntry(rank=i + 1, trial=t) for i, t in enumerate(session.scalars(stmt))]


def get_trial(*, session: Session, study_id: int, number: int) -> TrialRow | None:
    return session.scalars(
        select(TrialRow).where(TrialRow.study_id == study_id, TrialRow.number == number)
    ).first()


def cancel_study(*, session: Session, study_id: int) -> bool:
    """Atomically move an active study to cancelled; False if it had already finished.
    Its checkpoints go: no slot of it will be retried."""
    result = session.execute(
        update(StudyRow)
        .where(StudyRow.id == study_id, StudyRow.status.in_(ACTIVE_STUDY_STATES))
        .values(status=CANCELLED, finished_at=utcnow())
    )
    cancelled = bool(result.rowcount)  # type: ignore[attr-defined]
    if cancelled:
        drop_checkpoints(session=session, study_id=study_id)
    return cancelled


def count_active_studies(*, session: Session, study_id: int | None = None) -> int:
    """Studies of a built-in model still queued or running (only ``study_id``, when
    given): what a worker may still have work in."""
    stmt = select(func.count()).select_from(StudyRow)
    stmt = stmt.where(StudyRow.status.in_(ACTIVE_STUDY_STATES), StudyRow.model != EXTERNAL)
    if study_id is not None:
        stmt = stmt.where(StudyRow.id == study_id)
    return int(session.scalar(stmt) or 0)
