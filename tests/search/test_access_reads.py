"""The key, browser-session and study-access reads that every request makes
(search.store.access_reads: precompiled statements on a DBAPI connection) answer what the
ORM queries answer, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from search import store
from tests.study_data import make_study


def test_access_reads_match_the_tables(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        key = store.insert_key(session=s, name="k", user="ann", token_hash="h1", admin=True)
        store.insert_web_session(
            session=s, key_id=key.id, token_hash="live", lifetime=timedelta(hours=1)
        )
        store.insert_web_session(
            session=s, key_id=key.id, token_hash="gone", lifetime=timedelta(hours=-1)
        )
        store.touch_key(session=s, key_id=key.id, older_than=store.utcnow())
        key_id = key.id
    study_id = make_study(factory, [])
    with store.session_scope(factory) as s:
        s.execute(update(store.StudyRow).where(store.StudyRow.id == study_id).values(owner="ann"))
    with factory() as s:
        orm_key = s.get(store.ApiKeyRow, key_id)
        assert orm_key is not None
        with store.access_reads(store.get_engine(migrated_url, read_only=True)) as reads:
            found = reads.key_by_hash("h1")
            assert found is not None
            assert (found.id, found.name, found.user, found.admin, found.token_hash) == (
                key_id,
                "k",
                "ann",
                True,
                "h1",
            )
            assert found.last_used_at == orm_key.last_used_at is not None
            assert reads.key_by_hash("nope") is None
            live = reads.web_session_key("live")
            assert live is not None and live.id == key_id
            assert reads.web_session_key("gone") is None  # expired
            assert reads.study_access(study_id) == store.StudyAccess(owner="ann", public=False)
            assert reads.study_access(study_id + 1) is None


def test_a_short_busy_timeout_is_given_back(tmp_path: Path) -> None:
    """The event loop's reads wait at most 50 ms for a SQLite lock; the pooled connection
    goes back with its usual timeout for everyone else."""
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    engine = store.get_engine(url, read_only=True)

    def timeout_ms(connection: Any) -> int:
        cursor = connection.cursor()
        cursor.execute("PRAGMA busy_timeout")
        value = int(cursor.fetchone()[0])
        cursor.close()
        return value

    with store.access_reads(engine, busy_timeout_ms=50) as reads:
        assert timeout_ms(reads._conn) == 50
    connection = engine.raw_connection()
    try:
        assert timeout_ms(connection) == int(store.SQLITE_BUSY_TIMEOUT_S * 1000)
    finally:
        connection.close()
