"""Checkpoints of built-in trials stopped for a retry (hps_checkpoints): one per (study,
slot), since a slot's retry is a new attempt of the same configuration.

``save_checkpoint`` runs in the transaction that records the stopped attempt's end, after
the study and trial rows are locked (``search.lifecycle.end_trial``); the slot has one
attempt at a time, so the row is replaced without a race. ``drop_checkpoints`` runs where
a slot's last attempt ends (``finish_trial`` without a retry) and where a study is
cancelled. The bytes are content-addressed: a row whose bytes do not hash to its
``sha256`` reads as no checkpoint.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from search.store._engine import db_now
from search.store._tables import CheckpointRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredCheckpoint:
    epoch: int
    data: bytes


def save_checkpoint(*, session: Session, study_id: int, slot: int, epoch: int, data: bytes) -> None:
    """Keep ``data`` as the slot's checkpoint after ``epoch``, replacing any earlier one."""
    drop_checkpoints(session=session, study_id=study_id, slot=slot)
    session.add(
        CheckpointRow(
            study_id=study_id,
            slot=slot,
            epoch=epoch,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            data=data,
            created_at=db_now(),
        )
    )
    session.flush()


def slot_checkpoint(*, session: Session, study_id: int, slot: int) -> StoredCheckpoint | None:
    """The slot's checkpoint, or None (none kept, or its bytes are damaged)."""
    row = session.execute(
        select(CheckpointRow.epoch, CheckpointRow.sha256, CheckpointRow.data).where(
            CheckpointRow.study_id == study_id, CheckpointRow.slot == slot
        )
    ).one_or_none()
    if row is None:
        return None
    if hashlib.sha256(row.data).hexdigest() != row.sha256:
        log.warning("checkpoint of slot %s of study %s is damaged; not used", slot, study_id)
        return None
    return StoredCheckpoint(int(row.epoch), bytes(row.data))


def drop_checkpoints(*, session: Session, study_id: int, slot: int | None = None) -> None:
    """Drop the slot's checkpoint (``slot`` None: every one of the study's)."""
    stmt = delete(CheckpointRow).where(CheckpointRow.study_id == study_id)
    if slot is not None:
        stmt = stmt.where(CheckpointRow.slot == slot)
    session.execute(stmt)


__all__ = ["StoredCheckpoint", "drop_checkpoints", "save_checkpoint", "slot_checkpoint"]
