"""Is a study stuck? "Waiting for a worker": it could run a trial now, nothing runs, and
nothing that could run one has been heard from for a grace period.

A study is waiting when all of these hold:

- it is queued or running, with budget left (``claimed < n_trials``) and no trial
  running (so a free running slot too);
- it was created more than ``grace_s`` ago (a study just submitted is not stuck);
- a built-in model: no worker that could serve it has been seen within ``grace_s`` (a
  worker started with ``--study N`` serves study N only, ``serves_study`` NULL any
  built-in study; seen: its ``last_seen``, whatever its status, so a worker that just
  stopped still counts for one grace period);
- the user's own code (``model: external``): its clients are not workers, so no attempt
  has ended within ``grace_s`` either (a claim would be a running trial).

"Seen within" is the database's clock, as for lost trials and workers. The answer moves
with time, not only with writes: a study's version takes it as an input
(:func:`search.store.study_version`), so cached reads never hide it.
"""

from __future__ import annotations

from sqlalchemy import and_, exists, not_, or_, select
from sqlalchemy.orm import Session

from search._external import EXTERNAL
from search.store._engine import db_now
from search.store._tables import ACTIVE_STUDY_STATES, StudyRow, TrialRow, WorkerRow


def _could_wait(study: StudyRow) -> bool:
    """The conditions on the study's own row (no query): most reads stop here."""
    return (
        study.status in ACTIVE_STUDY_STATES
        and study.running == 0
        and study.claimed < study.n_trials
    )


def studies_waiting(*, session: Session, studies: list[StudyRow], grace_s: float) -> set[int]:
    """The ids of ``studies`` (rows as just read) that are waiting for a worker."""
    if grace_s <= 0:
        raise ValueError(f"grace_s must be positive, got {grace_s!r}")
    candidates = [s.id for s in studies if _could_wait(s)]
    if not candidates:
        return set()
    since = db_now(-grace_s)
    last_end = (
        select(TrialRow.finished_at)
        .where(TrialRow.study_id == StudyRow.id, TrialRow.seq.is_not(None))
        .order_by(TrialRow.seq.desc())
        .limit(1)
        .correlate(StudyRow)
        .scalar_subquery()
    )
    worker_seen = exists().where(
        WorkerRow.last_seen >= since,
        or_(WorkerRow.serves_study.is_(None), WorkerRow.serves_study == StudyRow.id),
    )
    stmt = select(StudyRow.id).where(
        StudyRow.id.in_(candidates),
        StudyRow.status.in_(ACTIVE_STUDY_STATES),
        StudyRow.running == 0,
        StudyRow.claimed < StudyRow.n_trials,
        StudyRow.created_at < since,
        or_(
            and_(StudyRow.model == EXTERNAL, or_(last_end.is_(None), last_end < since)),
            and_(StudyRow.model != EXTERNAL, not_(worker_seen)),
        ),
    )
    return set(session.scalars(stmt))


def study_waiting(*, session: Session, study: StudyRow, grace_s: float) -> bool:
    """Whether ``study`` (its row as just read) is waiting for a worker."""
    return study.id in studies_waiting(session=session, studies=[study], grace_s=grace_s)


__all__ = ["studies_waiting", "study_waiting"]
