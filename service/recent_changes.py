"""A study's recent changes, read once and shared by everyone who polls it.

Each watcher polls ``/changes`` (or a page's live feed) with its own cursor, so answers
kept by URL (:mod:`service.read_cache`) would rarely match: fifty watchers of a study whose
trials end ten times a second hold fifty different cursors. Instead the trials that ended
since the smallest cursor lately asked for, and the running ones, are read once per
``HPS_READ_CACHE_S`` (a snapshot), and each watcher gets the part after its own cursor,
with the snapshot's cursor as its next one. The watchers' cursors then agree after one
poll, and their answers are the same URL again.

Exact as ever: every trial that ended up to the cursor returned is in the answer; only
the snapshot may be up to ``HPS_READ_CACHE_S`` old, and a later poll catches up.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from search import store

MAX_SPAN = 500  # changes one snapshot may hold; an older cursor is read on its own
KEEP_FOR = 60.0  # seconds a study's snapshot outlives its last use


@dataclass
class _Snapshot:
    made: float  # time.monotonic()
    base: int  # the cursor it was read from
    changes: store.Changes
    oldest_asked: int  # the smallest cursor answered from it


def _after(changes: store.Changes, cursor: int) -> store.Changes:
    finished = [t for t in changes.finished if t.seq is not None and t.seq > cursor]
    return replace(changes, finished=finished, cursor=max(cursor, changes.cursor))


class RecentChanges:
    """Per study, the latest snapshot of its changes (thread-safe)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._snapshots: dict[int, _Snapshot] = {}
        self._lock = threading.Lock()
        self._reading: dict[int, threading.Lock] = {}  # study id -> held while one reads
        self.reads = 0  # snapshots read from the database

    def since(self, session: Session, study: store.StudyRow, cursor: int) -> store.Changes:
        """What :func:`search.store.changes_since` answers, from a recent snapshot. One
        caller per study reads a new one; the others wait for it rather than read too."""
        if not self.ttl_s:
            return store.changes_since(session=session, study=study, cursor=cursor)
        kept = self._kept(study.id, cursor)
        if kept is not None:
            return kept
        with self._lock:
            reading = self._reading.setdefault(study.id, threading.Lock())
        with reading:
            kept = self._kept(study.id, cursor)  # read while this caller waited
            if kept is not None:
                return kept
            with self._lock:
                snap = self._snapshots.get(study.id)
                base = cursor
                if snap is not None and snap.oldest_asked <= cursor:
                    base = snap.oldest_asked  # the watchers answered last time, and this one
            now = time.monotonic()
            changes = store.changes_since(session=session, study=study, cursor=base)
            if changes.cursor - base <= MAX_SPAN:
                with self._lock:
                    self.reads += 1
                    self._snapshots[study.id] = _Snapshot(now, base, changes, cursor)
                    for sid in [s for s, v in self._snapshots.items() if now - v.made > KEEP_FOR]:
                        del self._snapshots[sid]
                        self._reading.pop(sid, None)
        return _after(changes, cursor)

    def _kept(self, study_id: int, cursor: int) -> store.Changes | None:
        """The part after ``cursor`` of a young enough snapshot that covers it."""
        with self._lock:
            snap = self._snapshots.get(study_id)
            if snap is None or time.monotonic() - snap.made >= self.ttl_s or snap.base > cursor:
                return None
            snap.oldest_asked = min(snap.oldest_asked, cursor)
            return _after(snap.changes, cursor)

    def forget(self, study_id: int) -> None:
        with self._lock:
            self._snapshots.pop(study_id, None)


__all__ = ["MAX_SPAN", "RecentChanges"]
