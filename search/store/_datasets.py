"""Uploaded datasets and their content-addressed bytes (hps_datasets, hps_blobs).

Functions take the session keyword-only and never commit. A dataset in use by a study
(one still queued or running, or whose winner awaits its test-set evaluation) cannot be
deleted; deleting and naming a dataset in a new study both lock its row first, so they
never interleave.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from search.store._studies import ALL_OWNERS
from search.store._tables import (
    ACTIVE_STUDY_STATES,
    TEST_CLAIMED,
    BlobRow,
    DatasetRow,
    StudyRow,
)


def _owned_by(owner: str | None | object) -> list[Any]:
    """WHERE clauses for ``owner``'s datasets (``ALL_OWNERS``: everyone's)."""
    return [] if owner is ALL_OWNERS else [DatasetRow.owner == owner]


def find_dataset(
    *, session: Session, owner: str | None, sha256: str, target: str, task: str, impute: bool
) -> DatasetRow | None:
    """``owner``'s dataset already made of these bytes with this target, task and
    imputation."""
    return session.scalars(
        select(DatasetRow).where(
            DatasetRow.owner == owner,
            DatasetRow.sha256 == sha256,
            DatasetRow.target == target,
            DatasetRow.task == task,
            DatasetRow.impute == impute,
        )
    ).first()


def has_blob(*, session: Session, sha256: str) -> bool:
    return session.scalar(select(BlobRow.sha256).where(BlobRow.sha256 == sha256)) is not None


def insert_dataset(*, session: Session, data: bytes | None, values: dict[str, Any]) -> DatasetRow:
    """A dataset row, and its bytes unless a blob with its sha256 is already stored
    (``data`` None)."""
    if data is not None:
        session.add(BlobRow(sha256=values["sha256"], size=len(data), data=data))
        session.flush()
    row = DatasetRow(**values)
    session.add(row)
    session.flush()
    return row


def get_dataset(*, session: Session, dataset_id: int) -> DatasetRow | None:
    return session.get(DatasetRow, dataset_id)


def get_dataset_by_name(
    *, session: Session, name: str, owner: str | None | object = ALL_OWNERS
) -> DatasetRow | None:
    """``owner``'s dataset called ``name`` (``ALL_OWNERS``: anyone's, the oldest first)."""
    where = [DatasetRow.name == name, *_owned_by(owner)]
    return session.scalars(select(DatasetRow).where(*where).order_by(DatasetRow.id)).first()


def lock_dataset(*, session: Session, dataset_id: int) -> DatasetRow | None:
    return session.scalars(
        select(DatasetRow).where(DatasetRow.id == dataset_id).with_for_update()
    ).first()


def list_datasets(
    *, session: Session, offset: int, limit: int, owner: str | None | object = ALL_OWNERS
) -> tuple[list[DatasetRow], int]:
    """Newest first; only ``owner``'s unless ``owner`` is ``ALL_OWNERS``."""
    where = _owned_by(owner)
    count = session.scalar(select(func.count()).select_from(DatasetRow).where(*where)) or 0
    rows = session.scalars(
        select(DatasetRow).where(*where).order_by(DatasetRow.id.desc()).offset(offset).limit(limit)
    ).all()
    return list(rows), count


def dataset_bytes(*, session: Session, sha256: str) -> bytes | None:
    return session.scalar(select(BlobRow.data).where(BlobRow.sha256 == sha256))


def studies_using(*, session: Session, dataset_id: int) -> list[int]:
    """Studies that still need the dataset: queued or running, or ended with the winner's
    test-set evaluation still to come."""
    return list(
        session.scalars(
            select(StudyRow.id)
            .where(
                StudyRow.dataset_id == dataset_id,
                or_(
                    StudyRow.status.in_(ACTIVE_STUDY_STATES),
                    StudyRow.test_state.is_(None),
                    StudyRow.test_state == TEST_CLAIMED,
                ),
            )
            .order_by(StudyRow.id)
        )
    )


def delete_dataset(*, session: Session, dataset: DatasetRow) -> None:
    """Delete a (locked, unused) dataset, and its bytes when no other dataset shares them."""
    sha256 = dataset.sha256
    session.delete(dataset)
    session.flush()
    others = session.scalar(
        select(func.count()).select_from(DatasetRow).where(DatasetRow.sha256 == sha256)
    )
    if not others:
        session.execute(delete(BlobRow).where(BlobRow.sha256 == sha256))


__all__ = [
    "dataset_bytes",
    "delete_dataset",
    "find_dataset",
    "get_dataset",
    "get_dataset_by_name",
    "has_blob",
    "insert_dataset",
    "list_datasets",
    "lock_dataset",
    "studies_using",
]
