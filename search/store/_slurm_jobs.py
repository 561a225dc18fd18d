"""The Slurm job arrays submitted for a study (``hpsearch slurm submit`` records each)."""

from __future__ import annotations

from sqlalchemy import func, select
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


def newest_slurm_jobs(*, session: Session, study_ids: list[int]) -> dict[int, SlurmJobRow]:
    """Each study's newest job array (by study id; studies with none are left out), in one
    query: what the study's API answer shows."""
    if not study_ids:
        return {}
    newest = (
        select(func.max(SlurmJobRow.id))
        .where(SlurmJobRow.study_id.in_(study_ids))
        .group_by(SlurmJobRow.study_id)
    )
    rows = session.scalars(select(SlurmJobRow).where(SlurmJobRow.id.in_(newest)))
    return {row.study_id: row for row in rows}


__all__ = ["newest_slurm_jobs", "record_slurm_job", "slurm_jobs"]
