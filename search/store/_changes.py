"""What a study's watchers poll for: its version (has anything I can see changed?) and the
changes since a cursor (trials that ended after it, and the running ones). See
:func:`search.store.finish_trial` for the cursor."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from search.store._tables import SlurmJobRow, StudyRow, TrialRow
from search.store._trial_views import LIVE_STATES, TrialSummary, current_cursor, summaries


@dataclass(frozen=True)
class Changes:
    finished: list[TrialSummary]  # trials that ended after the cursor, in the order they ended
    running: list[TrialSummary]  # every trial still running
    cursor: int  # pass back to get only what changes after this call


# Built once: a statement built per call costs more CPU than the query itself.
_LIVE_TRIALS = (
    select(
        TrialRow.id,
        TrialRow.state,
        TrialRow.heartbeat_at,
        TrialRow.epochs_run,
        TrialRow.params,
        TrialRow.stack,
    )
    .where(TrialRow.study_id == bindparam("study_id"), TrialRow.state.in_(LIVE_STATES))
    .order_by(TrialRow.id)
)
_LAST_SLURM_JOB = select(func.max(SlurmJobRow.id)).where(
    SlurmJobRow.study_id == bindparam("study_id")
)


def study_version(*, session: Session, study: StudyRow, waiting: bool) -> str:
    """A token that changes whenever anything a reader can see of ``study`` changes.

    ``study`` is its row as just read; the version covers every column of it (status,
    ``public``, counts, the change cursor, the held-out test, ...) and each live trial's
    row as far as it changes while the trial runs: every write to a live trial renews its
    ``heartbeat_at``, and its progress, parameters and stack are in the token too. A trial
    that ends takes the study's next change number, so ended trials are covered by the
    cursor.
    ``waiting`` (:func:`search.store.study_waiting`, read with the row) changes with the
    clock and the workers, not with the study's rows: pass the value the answer will show.
    The Slurm jobs submitted for it (shown on its page) are covered by the newest one's id.
    Read it before the answer it labels: the answer is then at least as new as its label.
    """
    live = session.execute(_LIVE_TRIALS, {"study_id": study.id}).all()
    slurm = session.scalar(_LAST_SLURM_JOB, {"study_id": study.id})
    columns = [getattr(study, c.key) for c in StudyRow.__mapper__.column_attrs]
    token = repr((columns, live, waiting, slurm)).encode()
    digest = hashlib.blake2b(token, digest_size=8).hexdigest()
    return f"{study.change_seq}.{digest}"


def changes_since(*, session: Session, study: StudyRow, cursor: int) -> Changes:
    """What a live page needs after ``cursor``: trials ended since, and the running ones.

    Exact and clock-free: a trial's end takes the study's next change number under the
    study row's lock (:func:`search.store.finish_trial`), so numbers commit in order. The
    cursor returned is read before the trials, so every end up to it is in this answer (a
    trial that ends while this runs may come again in the next answer)."""
    new_cursor = current_cursor(session, study.id)
    numbered = [TrialRow.study_id == study.id, TrialRow.number.is_not(None)]
    ended = session.scalars(
        select(TrialRow.number)
        .where(*numbered, TrialRow.seq > cursor, TrialRow.state.not_in(LIVE_STATES))
        .order_by(TrialRow.seq)
    ).all()
    live = session.scalars(
        select(TrialRow.number)
        .where(*numbered, TrialRow.state.in_(LIVE_STATES))
        .order_by(TrialRow.number)
    ).all()
    numbers = [n for n in dict.fromkeys([*ended, *live]) if n is not None]
    rows, _ = summaries(session, study, numbers)
    finished = [t for t in rows if t.state not in LIVE_STATES]
    running = [t for t in rows if t.state in LIVE_STATES]
    return Changes(finished=finished, running=running, cursor=max(cursor, new_cursor))


__all__ = ["Changes", "changes_since", "study_version"]
