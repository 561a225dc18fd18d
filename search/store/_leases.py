"""Remote attempts: the rows behind the REST trial API's calls (no Optuna here).

A remote client holds a *lease* on the attempt it claimed: a random token stored on the
attempt's row. Every call names the trial by number and shows the lease; the call locks
the row (``lock_attempt``) and the lifecycle (``search.remote``) compares. A report
renews the lease (``heartbeat_at``) and stores the epoch's values in ``curves``: an
``epoch`` list and one list per reported metric, aligned (None where an epoch did not
report that metric), and the latest value of each metric in ``metrics``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from search.store._engine import db_now
from search.store._tables import T_RUNNING, StudyRow, TrialRow


@dataclass(frozen=True)
class Attempt:
    """One attempt's row as a remote call needs it; ``now`` is the database's clock."""

    id: int
    study_id: int
    number: int
    slot: int | None
    state: str
    lease: str | None
    optuna_trial_id: int | None
    params: dict[str, Any]
    curves: dict[str, Any]
    metrics: dict[str, Any]
    value: float | None
    reason: str | None
    started_at: datetime
    now: datetime
    study_status: str  # its study's, read in the same statement (a cancel shows at once)

    @property
    def epochs(self) -> list[int]:
        return list(self.curves.get("epoch") or [])


def reported_series(curves: dict[str, Any], name: str) -> dict[int, float]:
    """A metric's stored values by epoch (epochs that did not report it left out)."""
    values = curves.get(name) or []
    return {
        int(e): float(v)
        for e, v in zip(curves.get("epoch") or [], values, strict=False)
        if v is not None
    }


def reported_at(curves: dict[str, Any], epoch: int) -> dict[str, float]:
    """The metrics stored for one epoch (those it reported as finite numbers)."""
    at = (curves.get("epoch") or []).index(epoch)
    return {
        name: float(values[at])
        for name, values in curves.items()
        if name != "epoch" and at < len(values) and values[at] is not None
    }


def appended_report(
    curves: dict[str, Any], epoch: int, metrics: dict[str, float]
) -> dict[str, Any]:
    """``curves`` with one more epoch: each metric's list padded with None where an epoch
    did not report it (non-finite values are stored as None, as JSON has no NaN)."""
    epochs = list(curves.get("epoch") or [])
    out: dict[str, Any] = {"epoch": [*epochs, epoch]}
    for name in dict.fromkeys([*(k for k in curves if k != "epoch"), *metrics]):
        old = list(curves.get(name) or [None] * len(epochs))
        value = metrics.get(name)
        out[name] = [*old, value if value is not None and math.isfinite(value) else None]
    return out


# Built once, in Core (no ORM bookkeeping): the trial calls run these on every report, and
# a statement built per call costs more CPU than the query itself.
_TRIAL_TABLE, _STUDY_TABLE = cast(Table, TrialRow.__table__), cast(Table, StudyRow.__table__)
_TRIALS, _STUDIES = _TRIAL_TABLE.c, _STUDY_TABLE.c
_LOCK_ATTEMPT = (
    select(
        _TRIALS.id,
        _TRIALS.study_id,
        _TRIALS.number,
        _TRIALS.slot,
        _TRIALS.state,
        _TRIALS.lease,
        _TRIALS.optuna_trial_id,
        _TRIALS.params,
        _TRIALS.curves,
        _TRIALS.metrics,
        _TRIALS.value,
        _TRIALS.reason,
        _TRIALS.started_at,
        db_now(),
        _STUDIES.status,
    )
    .join_from(_TRIAL_TABLE, _STUDY_TABLE, _STUDIES.id == _TRIALS.study_id)
    .where(_TRIALS.study_id == bindparam("study_id"), _TRIALS.number == bindparam("number"))
    .with_for_update(of=_TRIAL_TABLE)
)
_RUNNING = (_TRIALS.id == bindparam("row_id"), _TRIALS.state == T_RUNNING)
_RECORD_REPORT = (
    update(_TRIAL_TABLE)
    .where(*_RUNNING)
    .values(
        curves=bindparam("new_curves", type_=TrialRow.curves.type),
        metrics=bindparam("new_metrics", type_=TrialRow.metrics.type),
        epochs_run=bindparam("new_epochs_run"),
        heartbeat_at=db_now(),
    )
)
_RENEW_LEASE = update(_TRIAL_TABLE).where(*_RUNNING).values(heartbeat_at=db_now())


def lock_attempt(*, session: Session, study_id: int, number: int) -> Attempt | None:
    """Lock trial ``number`` of ``study_id`` for this transaction (None: no such trial),
    read with its study's status (the study row is not locked)."""
    row = session.execute(_LOCK_ATTEMPT, {"study_id": study_id, "number": number}).one_or_none()
    if row is None:
        return None
    return Attempt(
        id=row[0],
        study_id=row[1],
        number=row[2],
        slot=row[3],
        state=row[4],
        lease=row[5],
        optuna_trial_id=row[6],
        params=row[7] or {},
        curves=row[8] or {},
        metrics=row[9] or {},
        value=row[10],
        reason=row[11],
        started_at=row[12],
        now=_naive(row[13]),
        study_status=row[14],
    )


def _naive(value: Any) -> datetime:
    """``db_now()`` as read back: a datetime (PostgreSQL) or its text (SQLite)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return datetime.fromisoformat(str(value))


def last_epoch(curves: dict[str, Any]) -> int:
    """A remote attempt's epochs so far: the last one it reported (0: none yet)."""
    epochs = curves.get("epoch") or []
    return int(epochs[-1]) if epochs else 0


def record_report(
    *, session: Session, trial_row_id: int, curves: dict[str, Any], metrics: dict[str, Any]
) -> None:
    """Store a locked RUNNING attempt's reports so far and renew its lease."""
    values = {"new_curves": curves, "new_metrics": metrics, "new_epochs_run": last_epoch(curves)}
    session.execute(_RECORD_REPORT, {"row_id": trial_row_id, **values})


def renew_lease(*, session: Session, trial_row_id: int) -> None:
    """A RUNNING attempt's client is alive: push its heartbeat to the database's now."""
    session.execute(_RENEW_LEASE, {"row_id": trial_row_id})


def add_metric_names(*, session: Session, study_id: int, names: list[str]) -> None:
    """Append the names not yet listed to an external study's ``metric_names`` (the
    caller holds the study row's lock: ``lock_study``)."""
    known = session.scalar(select(StudyRow.metric_names).where(StudyRow.id == study_id)) or []
    new = [n for n in names if n not in known]
    if new:
        session.execute(
            update(StudyRow).where(StudyRow.id == study_id).values(metric_names=[*known, *new])
        )


__all__ = [
    "Attempt",
    "appended_report",
    "reported_at",
    "reported_series",
    "last_epoch",
    "add_metric_names",
    "lock_attempt",
    "record_report",
    "renew_lease",
]
