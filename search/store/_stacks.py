"""Trials trained together as one stacked model (``worker --batch-trials``, migration 0012):
an attempt's ``hps_trials.stack`` is its stack's first trial number, so a stack's trials
are the study's rows that share it. A trial keeps its stack after leaving it early."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from search.store._tables import TrialRow


def study_has_stacks(*, session: Session, study_id: int) -> bool:
    """Whether any trial of the study trained in a stack (pages show a stack column then)."""
    found = session.scalar(
        select(TrialRow.id)
        .where(TrialRow.study_id == study_id, TrialRow.stack.is_not(None))
        .limit(1)
    )
    return found is not None


def stack_trials(*, session: Session, study_id: int, stack: int) -> list[int]:
    """The numbers of the study's trials that trained in stack ``stack``, ascending."""
    numbers = session.scalars(
        select(TrialRow.number)
        .where(
            TrialRow.study_id == study_id,
            TrialRow.stack == stack,
            TrialRow.number.is_not(None),
        )
        .distinct()
        .order_by(TrialRow.number)
    ).all()
    return [n for n in numbers if n is not None]


__all__ = ["stack_trials", "study_has_stacks"]
