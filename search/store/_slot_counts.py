"""A study's progress counted by budget slot, as a user reads it ("24/24 done").

A slot is one unit of the budget; an attempt at it that lost its worker (or was handed
back) is failed for a retry and the slot runs again, so a slot may have several attempts
and only its last one says how the slot ended. Only a failed attempt is ever retried
(``search.store.finish_trial``), so:

- every attempt but the last of its slot is a FAIL row (``superseded``: a later attempt
  at its slot exists), and a FAIL row still ``retry_pending`` is the last of an open slot;
- complete, pruned and running rows are always their slot's last attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, exists, func, select
from sqlalchemy.orm import Session, aliased

from search.store._studies import trial_counts
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


def _failed_where(condition: Any) -> Any:
    """Failed attempts meeting ``condition``, per study (the (study, state) index finds
    the failed rows; there are few)."""
    return (
        select(TrialRow.study_id, func.count())
        .where(TrialRow.study_id.in_(bindparam("ids", expanding=True)))
        .where(TrialRow.state == T_FAIL, condition)
        .group_by(TrialRow.study_id)
    )


_later = aliased(TrialRow)
# Built once: building these per call costs more CPU than running them.
_PENDING = _failed_where(TrialRow.retry_pending.is_(True))
_SUPERSEDED = _failed_where(
    exists().where(
        _later.study_id == TrialRow.study_id,
        _later.slot == TrialRow.slot,
        _later.id > TrialRow.id,
    )
)


def slot_counts(
    *,
    session: Session,
    study_ids: list[int],
    attempts: dict[int, dict[str, int]] | None = None,
) -> dict[int, SlotCounts]:
    """Each study's slots by how they ended. ``attempts``: its trials by state, if already
    read (``search.store.trial_counts``). Two more indexed queries, on failed rows only."""
    if not study_ids:
        return {}
    if attempts is None:
        attempts = trial_counts(session=session, study_ids=study_ids)
    pending = {sid: n for sid, n in session.execute(_PENDING, {"ids": study_ids})}
    superseded = {sid: n for sid, n in session.execute(_SUPERSEDED, {"ids": study_ids})}
    counts = {}
    for sid in study_ids:
        found, retried = attempts.get(sid, {}), superseded.get(sid, 0) + pending.get(sid, 0)
        counts[sid] = SlotCounts(
            complete=found.get(T_COMPLETE, 0),
            pruned=found.get(T_PRUNED, 0),
            failed=found.get(T_FAIL, 0) - retried,
            running=found.get(T_RUNNING, 0) + found.get(T_LOST, 0),
            lost_retried=retried,
        )
    return counts


__all__ = ["SlotCounts", "slot_counts"]
