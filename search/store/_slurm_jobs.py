"""The Slurm job arrays submitted for a study (``hpsearch slurm submit`` records each)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from search.store._engine import db_now
from search.store._tables import SlurmJobRow


def record_slurm_job(
    *, session: Session, study_id: int, job_id: str, array_size: int, submitted_by: str
) -> SlurmJobRow:
    row = SlurmJobRow(
        study_id=study_id,
        job_id=job_id,
        array_size=array_size,
        submitted_at=db_now(),
        submitted_by=submitted_by,
    )
    session.add(row)
    session.flush()
    return row


def slurm_jobs(*, session: Session, study_id: int) -> list[SlurmJobRow]:
    """The study's job arrays, oldest first."""
    stmt = select(SlurmJobRow).where(SlurmJobRow.study_id == study_id).order_by(SlurmJobRow.id)
    return list(session.scalars(stmt))


__all__ = ["record_slurm_job", "slurm_jobs"]
