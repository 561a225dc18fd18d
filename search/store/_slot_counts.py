"""A study's progress counted by budget slot, as a user reads it ("24/24 done").

A slot is one unit of the budget; an attempt at it that lost its worker (or was handed
back) is failed for a retry and the slot runs again, so a slot may have several attempts
and only its last one says how the slot ended. Only a failed attempt is ever retried
(``search.store.finish_trial``), so:

- every attempt but the last of its slot is a FAIL row (``superseded``: the rows beyond
  one per slot), and a FAIL row still ``retry_pending`` is the last of an open slot;
- complete, pruned and running rows are always their slot's last attempt.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from search.store._tables import T_COMPLETE, T_FAIL, T_LOST, T_PRUNED, T_RUNNING, TrialRow


@dataclass(frozen=True)
class SlotCounts:
    complete: int = 0  # slots whose last attempt completed
    pruned: int = 0
    failed: int = 0  # ... failed for good (not waiting for a retry)
    running: int = 0  # slots with an attempt running now
    lost_retried: int = 0  # attempts lost (or handed back) whose slot was given back to retry

    @property
    def done(self) -> int:
        """Slots that ended: never more than the study's ``n_trials``."""
        return self.complete + self.pruned + self.failed


def slot_counts(*, session: Session, study_ids: list[int]) -> dict[int, SlotCounts]:
    """Each study's slots by how they ended (two grouped, indexed queries)."""
    if not study_ids:
        return {}
    by_state: dict[int, dict[tuple[str, bool], int]] = {sid: {} for sid in study_ids}
    attempts = session.execute(
        select(TrialRow.study_id, TrialRow.state, TrialRow.retry_pending, func.count())
        .where(TrialRow.study_id.in_(study_ids))
        .group_by(TrialRow.study_id, TrialRow.state, TrialRow.retry_pending)
    )
    for study_id, state, pending, count in attempts:
        by_state[study_id][(state, bool(pending))] = int(count)
    superseded: dict[int, int] = dict.fromkeys(study_ids, 0)
    extra = session.execute(
        select(TrialRow.study_id, func.count(TrialRow.slot) - func.count(distinct(TrialRow.slot)))
        .where(TrialRow.study_id.in_(study_ids))
        .group_by(TrialRow.study_id)
    )
    for study_id, count in extra:
        superseded[study_id] = int(count or 0)
    return {sid: _slots(found, superseded[sid]) for sid, found in by_state.items()}


def _slots(attempts: dict[tuple[str, bool], int], superseded: int) -> SlotCounts:
    """Slot counts from attempts by (state, retry_pending) and the superseded count."""

    def n(state: str) -> int:
        return attempts.get((state, False), 0) + attempts.get((state, True), 0)

    pending = attempts.get((T_FAIL, True), 0)
    return SlotCounts(
        complete=n(T_COMPLETE),
        pruned=n(T_PRUNED),
        failed=n(T_FAIL) - pending - superseded,
        running=n(T_RUNNING) + n(T_LOST),
        lost_retried=superseded + pending,
    )


__all__ = ["SlotCounts", "slot_counts"]
