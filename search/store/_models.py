"""Kept model weights (hps_models) and the winner's test-set evaluation (hps_studies.test_*).

``keep_model`` runs in the transaction that records a complete trial, after the study row
is locked (``search.lifecycle.end_trial``), so at every commit hps_models holds exactly the
best ``keep`` complete trials of the study by the objective (ties: lower trial number).

The test evaluation happens once per ended study: a worker claims it with one conditional
UPDATE (a claim older than the grace period, by the database's clock, can be taken over:
its worker died), evaluates the best trial's kept model on the test split, and records
the metrics, or that there was nothing to evaluate.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from search._external import EXTERNAL
from search.store._engine import db_now
from search.store._tables import (
    FINISHED_STUDY_STATES,
    TEST_CLAIMED,
    ModelRow,
    StudyRow,
)

DEFAULT_KEEP = 3


def _order(direction: str) -> tuple[Any, Any]:
    value = ModelRow.value.asc() if direction == "minimize" else ModelRow.value.desc()
    return value, ModelRow.number.asc()


def keep_model(
    *,
    session: Session,
    study_id: int,
    direction: str,
    trial_row_id: int,
    number: int,
    value: float,
    config: dict[str, Any],
    weights: bytes,
    keep: int = DEFAULT_KEEP,
) -> bool:
    """Store a complete trial's model if it ranks among the study's best ``keep``, and
    drop the one it pushes out. The study row must be locked. True if it was kept."""
    better = ModelRow.value < value if direction == "minimize" else ModelRow.value > value
    ahead = session.scalar(
        select(func.count())
        .select_from(ModelRow)
        .where(
            ModelRow.study_id == study_id,
            or_(better, and_(ModelRow.value == value, ModelRow.number < number)),
        )
    )
    if (ahead or 0) >= keep:
        return False
    session.add(
        ModelRow(
            study_id=study_id,
            trial_id=trial_row_id,
            number=number,
            value=value,
            config=config,
            weights=weights,
        )
    )
    session.flush()
    beyond = select(ModelRow.id).where(ModelRow.study_id == study_id).order_by(*_order(direction))
    dropped = list(session.scalars(beyond.offset(keep)))
    if dropped:
        session.execute(delete(ModelRow).where(ModelRow.id.in_(dropped)))
    return True


def best_model(*, session: Session, study: StudyRow) -> ModelRow | None:
    """The kept model of the study's best complete trial (None before one completes)."""
    return session.scalars(
        select(ModelRow).where(ModelRow.study_id == study.id).order_by(*_order(study.direction))
    ).first()


def kept_numbers(*, session: Session, study_id: int) -> list[int]:
    """Trial numbers whose weights are kept, in no particular order."""
    return list(session.scalars(select(ModelRow.number).where(ModelRow.study_id == study_id)))


def _awaiting_test(stale_after_s: float) -> Any:
    """Ended studies of a built-in model (the user's own code has no test split here)."""
    return and_(
        StudyRow.model != EXTERNAL,
        StudyRow.status.in_(FINISHED_STUDY_STATES),
        StudyRow.running == 0,
        or_(
            StudyRow.test_state.is_(None),
            and_(
                StudyRow.test_state == TEST_CLAIMED,
                StudyRow.test_claimed_at < db_now(-stale_after_s),
            ),
        ),
    )


def studies_awaiting_test(
    *, session: Session, stale_after_s: float, study_id: int | None = None
) -> list[int]:
    """Ended studies whose winner has not been scored on the test split yet (a read)."""
    stmt = select(StudyRow.id).where(_awaiting_test(stale_after_s)).order_by(StudyRow.id)
    if study_id is not None:
        stmt = stmt.where(StudyRow.id == study_id)
    return list(session.scalars(stmt.limit(20)))


def claim_test(*, session: Session, study_id: int, stale_after_s: float) -> bool:
    """Take the study's test evaluation (one conditional UPDATE); False if another worker
    has it or it is done."""
    result = session.execute(
        update(StudyRow)
        .where(StudyRow.id == study_id, _awaiting_test(stale_after_s))
        .values(test_state=TEST_CLAIMED, test_claimed_at=db_now())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_test(
    *,
    session: Session,
    study_id: int,
    state: str,
    trial_number: int | None,
    metrics: dict[str, Any] | None,
) -> bool:
    """Record the claimed evaluation's result (``state``: done, none or failed)."""
    result = session.execute(
        update(StudyRow)
        .where(StudyRow.id == study_id, StudyRow.test_state == TEST_CLAIMED)
        .values(test_state=state, test_trial=trial_number, test_metrics=metrics)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


__all__ = [
    "DEFAULT_KEEP",
    "best_model",
    "claim_test",
    "keep_model",
    "kept_numbers",
    "record_test",
    "studies_awaiting_test",
]
