"""Worker registration, liveness and listing. ``last_seen`` is the database's clock, and a
worker refreshes it while idle too, so "live" means the same thing on every host."""

from __future__ import annotations

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from search.store._engine import db_now
from search.store._tables import W_BUSY, W_IDLE, W_LOST, W_STOPPED, WORKERS, WorkerRow

# Stopped and lost workers stay listed this long after they were last seen.
FORGET_AFTER_S = 24 * 3600.0


def register_worker(
    *,
    session: Session,
    name: str,
    host: str,
    pid: int,
    device: str,
    serves_study: int | None = None,
) -> int:
    """A new worker's row (idle); ``serves_study``: the one study it claims from, if any."""
    row = WorkerRow(
        name=name,
        host=host,
        pid=pid,
        device=device,
        serves_study=serves_study,
        status=W_IDLE,
        started_at=db_now(),
        last_seen=db_now(),
    )
    session.add(row)
    session.flush()
    return row.id


# Built once (each trial's claim and end set it): building it costs more than running it.
_STATE = (
    update(WORKERS)
    .where(WORKERS.c.id == bindparam("wid"))
    .values(
        status=bindparam("s"),
        study_id=bindparam("sid"),
        trial_number=bindparam("n"),
        stack=bindparam("k"),
        last_seen=db_now(),
    )
)


def set_worker_state(
    *,
    session: Session,
    worker_id: int,
    status: str,
    study_id: int | None = None,
    trial_number: int | None = None,
    stack: list[int] | None = None,
) -> None:
    """The worker's status and what it trains: ``trial_number``, or with ``stack`` the
    trial numbers it trains together (``trial_number`` is then the first)."""
    state = {"wid": worker_id, "s": status, "sid": study_id, "n": trial_number, "k": stack}
    session.execute(_STATE, state)


def get_worker(*, session: Session, worker_id: int) -> WorkerRow | None:
    return session.get(WorkerRow, worker_id)


def mark_lost_workers(*, session: Session, grace_s: float) -> int:
    """Idle or busy workers not seen for ``grace_s`` are lost; stopped and lost ones not
    seen for a day are forgotten, so the table does not grow without bound."""
    lost = session.execute(
        update(WorkerRow)
        .where(WorkerRow.status.in_((W_IDLE, W_BUSY)), WorkerRow.last_seen < db_now(-grace_s))
        .values(status=W_LOST, trial_number=None, stack=None)
    )
    session.execute(
        delete(WorkerRow).where(
            WorkerRow.status.in_((W_STOPPED, W_LOST)),
            WorkerRow.last_seen < db_now(-FORGET_AFTER_S),
        )
    )
    return int(lost.rowcount)  # type: ignore[attr-defined]


def list_workers(
    *, session: Session, offset: int, limit: int, include_stopped: bool
) -> tuple[list[WorkerRow], int]:
    stmt = select(WorkerRow)
    count_stmt = select(func.count()).select_from(WorkerRow)
    if not include_stopped:
        stmt = stmt.where(WorkerRow.status != W_STOPPED)
        count_stmt = count_stmt.where(WorkerRow.status != W_STOPPED)
    rows = session.scalars(stmt.order_by(WorkerRow.id.desc()).offset(offset).limit(limit)).all()
    return list(rows), session.scalar(count_stmt) or 0


def count_live_workers(*, session: Session, host: str, seen_within_s: float) -> int:
    """Workers on ``host`` that are running (idle or busy) and heartbeated recently."""
    stmt = (
        select(func.count())
        .select_from(WorkerRow)
        .where(
            WorkerRow.host == host,
            WorkerRow.status.in_((W_IDLE, W_BUSY)),
            WorkerRow.last_seen >= db_now(-seen_within_s),
        )
    )
    return int(session.scalar(stmt) or 0)
