"""Worker registration and listing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from search.store._engine import utcnow
from search.store._tables import WorkerRow


def register_worker(*, session: Session, name: str, host: str, pid: int, device: str) -> int:
    row = WorkerRow(name=name, host=host, pid=pid, device=device, status="idle")
    session.add(row)
    session.flush()
    return row.id


def set_worker_state(
    *,
    session: Session,
    worker_id: int,
    status: str,
    study_id: int | None = None,
    trial_number: int | None = None,
) -> None:
    session.execute(
        update(WorkerRow)
        .where(WorkerRow.id == worker_id)
        .values(status=status, study_id=study_id, trial_number=trial_number, last_seen=utcnow())
    )


def get_worker(*, session: Session, worker_id: int) -> WorkerRow | None:
    return session.get(WorkerRow, worker_id)


def list_workers(
    *, session: Session, offset: int, limit: int, include_stopped: bool
) -> tuple[list[WorkerRow], int]:
    stmt = select(WorkerRow)
    count_stmt = select(func.count()).select_from(WorkerRow)
    if not include_stopped:
        stmt = stmt.where(WorkerRow.status != "stopped")
        count_stmt = count_stmt.where(WorkerRow.status != "stopped")
    rows = session.scalars(stmt.order_by(WorkerRow.id.desc()).offset(offset).limit(limit)).all()
    return list(rows), session.scalar(count_stmt) or 0


def count_live_workers(*, session: Session, host: str, seen_within_s: float) -> int:
    """Workers on ``host`` that are running (idle or busy) and heartbeated recently."""
    cutoff = utcnow() - timedelta(seconds=seen_within_s)
    stmt = (
        select(func.count())
        .select_from(WorkerRow)
        .where(
            WorkerRow.host == host,
            WorkerRow.status.in_(("idle", "busy")),
            WorkerRow.last_seen >= cutoff,
        )
    )
    return int(session.scalar(stmt) or 0)
