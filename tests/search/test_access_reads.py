"""The key, browser-session and study-access reads that every request makes
(search.store.access_reads: precompiled statements on a DBAPI connection) answer what the
ORM queries answer, on SQLite and PostgreSQL; so does the one read of a study and a key
together, made by a kept answer's check, on a pooled connection and on an event loop's own
(search.store.loop_reads)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Float, Integer, bindparam, func, literal_column, select, text, update

from search import store
from search.store import _loop_reads as loop_reads_module
from tests.study_data import make_study


def _ann_and_her_study(migrated_url: str) -> tuple[int, int]:
    """A key "k" of ann's (admin, hash "h1") with a live browser session ("live") and an
    expired one ("gone"), and a study of ann's: the key's id and the study's."""
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
    return key_id, study_id


def test_access_reads_match_the_tables(migrated_url: str) -> None:
    key_id, study_id = _ann_and_her_study(migrated_url)
    factory = store.make_session_factory(migrated_url)
    with factory() as s:
        orm_key = s.get(store.ApiKeyRow, key_id)
        assert orm_key is not None
        with store.access_reads(store.get_engine(migrated_url, read_only=True)) as reads:
            found = reads.run(store.read_key("h1"))
            assert found is not None
            assert (found.id, found.name, found.user, found.admin, found.token_hash) == (
                key_id,
                "k",
                "ann",
                True,
                "h1",
            )
            assert found.last_used_at == orm_key.last_used_at is not None
            assert reads.run(store.read_key("nope")) is None
            live = reads.run(store.read_session_key("live"))
            assert live is not None and live.id == key_id
            assert reads.run(store.read_session_key("gone")) is None  # expired
            assert reads.run(store.read_study_access(study_id)) == store.StudyAccess(
                owner="ann", public=False
            )
            assert reads.run(store.read_study_access(study_id + 1)) is None


def test_the_loops_sqlite_reads_wait_briefly_and_the_pool_as_usual(tmp_path: Path) -> None:
    """The event loop's reads wait at most 50 ms for a SQLite lock, on a connection of their
    own; the pooled connections keep their usual timeout for everyone else."""
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    timeout = store.Read(select(literal_column("1")), {}, bool)

    def timeout_ms(connection: Any) -> int:
        cursor = connection.cursor()
        cursor.execute("PRAGMA busy_timeout")
        value = int(cursor.fetchone()[0])
        cursor.close()
        return value

    loop_reads = store.loop_reads(url)
    assert isinstance(loop_reads, loop_reads_module.SqliteLoopReads)
    assert asyncio.run(loop_reads.run(timeout)) is True
    for engine, expected in (
        (loop_reads.engine, loop_reads_module.SQLITE_BUSY_MS),
        (store.get_engine(url, read_only=True), int(store.SQLITE_BUSY_TIMEOUT_S * 1000)),
    ):
        connection = engine.raw_connection()
        try:
            assert timeout_ms(connection) == expected
        finally:
            connection.close()
    asyncio.run(loop_reads.close())


def _study_and_key_reads(study_id: int) -> dict[str, store.Read[store.StudyAndKey | None]]:
    return {
        "key": store.read_study_and_key(study_id, key_hash="h1"),
        "wrong key": store.read_study_and_key(study_id, key_hash="nope"),
        "session": store.read_study_and_key(study_id, session_hash="live"),
        "expired session": store.read_study_and_key(study_id, session_hash="gone"),
        "nobody": store.read_study_and_key(study_id),
        "no study": store.read_study_and_key(study_id + 1, key_hash="h1"),
    }


def _expect_study_and_key(found: dict[str, Any], key_id: int) -> None:
    ann = store.StudyAccess(owner="ann", public=False)
    key = found["key"][1]
    assert found["key"][0] == ann and key is not None
    assert (key.id, key.name, key.user, key.admin, key.token_hash) == (
        key_id,
        "k",
        "ann",
        True,
        "h1",
    )
    assert found["session"] == (ann, key)  # the key the session was signed in with
    for nobody in ("wrong key", "expired session", "nobody"):
        assert found[nobody] == (ann, None), nobody
    assert found["no study"] is None


@pytest.mark.parametrize("where", ["pooled", "loop", "loop, together"])
def test_a_study_and_a_key_in_one_read(migrated_url: str, where: str) -> None:
    """A kept answer's check reads the study's access and the caller's key in one round
    trip: the same answers as the two reads, on a pooled connection and on an event
    loop's own, one after another or all at once (on PostgreSQL, sent together in one
    pipeline)."""
    key_id, study_id = _ann_and_her_study(migrated_url)
    reads = _study_and_key_reads(study_id)
    if where == "pooled":
        with store.access_reads(store.access_engine(migrated_url)) as pooled:
            found = {name: pooled.run(read) for name, read in reads.items()}
    else:

        async def on_a_loop() -> dict[str, Any]:
            loop_reads = store.loop_reads(migrated_url)
            try:
                if where == "loop":
                    return {name: await loop_reads.run(read) for name, read in reads.items()}
                await loop_reads.run(store.read_study_access(study_id))  # connected
                found = await asyncio.gather(*map(loop_reads.run, reads.values()))
                return dict(zip(reads, found, strict=True))
            finally:
                await loop_reads.close()

        found = asyncio.run(on_a_loop())
    _expect_study_and_key(found, key_id)


def _pid_read() -> store.Read[int]:
    return store.Read(select(func.pg_backend_pid()), {}, lambda row: int(row[0]) if row else 0)


def test_a_loops_reads_survive_a_new_loop_and_a_dropped_connection(postgres_url: str) -> None:
    """The PostgreSQL connection of a loop's reads belongs to the loop it was opened on: on
    another loop (a test client's next one), another is opened. After any error, even one
    that leaves it usable, and after the server dropped it, that read fails (its caller
    answers the usual way) and the next read is on a new connection."""
    from service.runner import upgrade_db

    upgrade_db(postgres_url)
    _, study_id = _ann_and_her_study(postgres_url)
    loop_reads = store.loop_reads(postgres_url)
    read = store.read_study_access(study_id)
    expected = store.StudyAccess(owner="ann", public=False)

    async def first() -> int:
        assert await loop_reads.run(read) == expected
        return await loop_reads.run(_pid_read())

    async def second(first_loops: int) -> None:
        pid = await loop_reads.run(_pid_read())
        assert pid != first_loops  # a new loop: a new connection
        with pytest.raises(psycopg.errors.DivisionByZero):
            await loop_reads.run(store.Read(select(literal_column("1 / 0")), {}, bool))
        assert await loop_reads.run(read) == expected
        pid, dropped = await loop_reads.run(_pid_read()), pid
        assert pid != dropped  # dropped after the error
        with store.get_engine(postgres_url).connect() as conn:
            conn.execute(select(func.pg_terminate_backend(pid)))
        with pytest.raises(psycopg.OperationalError):
            await loop_reads.run(read)
        assert await loop_reads.run(read) == expected  # on a new connection
        assert await loop_reads.run(_pid_read()) != pid
        await loop_reads.close()
        with pytest.raises(store.NotReady):  # closed for good
            await loop_reads.run(read)

    asyncio.run(second(asyncio.run(first())))


def test_a_loops_connection_is_opened_once_and_stalls_send_reads_elsewhere(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads on a loop share one connection and wait their turn on it (a burst of pollers);
    while it is being opened, and once no read on it has finished for PG_STALLED_S, a read
    fails at once (NotReady: the caller answers the usual way) instead of waiting."""
    from service.runner import upgrade_db

    upgrade_db(postgres_url)
    _, study_id = _ann_and_her_study(postgres_url)
    read = store.read_study_access(study_id)
    expected = store.StudyAccess(owner="ann", public=False)
    monkeypatch.setattr(loop_reads_module, "PG_STALLED_S", 0.2)

    async def on_a_loop() -> None:
        loop_reads = store.loop_reads(postgres_url)
        try:
            opening = await asyncio.gather(
                *(loop_reads.run(read) for _ in range(3)), return_exceptions=True
            )
            assert opening[0] == expected
            assert [type(r) for r in opening[1:]] == [store.NotReady] * 2
            burst = await asyncio.gather(*(loop_reads.run(_pid_read()) for _ in range(50)))
            assert len(set(burst)) == 1  # all answered, on one connection
            slow = store.Read(select(func.pg_sleep(literal_column("1.5"))), {}, bool)
            stalled = asyncio.ensure_future(loop_reads.run(slow))
            await asyncio.sleep(0.5)  # well past PG_STALLED_S, well before the read ends
            with pytest.raises(store.NotReady):
                await loop_reads.run(read)
            await stalled
            assert await loop_reads.run(read) == expected  # going again
        finally:
            await loop_reads.close()

    asyncio.run(on_a_loop())


# Takes the sequence's next number (so each time it is sent shows) and asks about "n".
TICKET = select(
    literal_column("nextval('hps_test_tickets')"),
    bindparam("n", type_=Integer),
    func.pg_sleep(bindparam("sleep", type_=Float)),
)


def _ticket(n: int, sleep_s: float = 0.0) -> store.Read[tuple[int, int]]:
    return store.Read(TICKET, {"n": n, "sleep": sleep_s}, lambda row: (int(row[0]), int(row[1])))


def test_reads_that_wait_together_are_sent_once_each_and_only_answer_earlier_ones(
    postgres_url: str,
) -> None:
    """On PostgreSQL, reads that wait for the loop's connection together are sent together:
    those asking the same once (one answer for all), the others in one pipeline, each
    caller getting the answer to its own question. A read made while another that asks the
    same is on its way is sent again: an answer is never older than its question (a key
    revoked before a poll asked is refused)."""
    with store.get_engine(postgres_url).connect() as conn:
        conn.execute(text("CREATE SEQUENCE hps_test_tickets"))
        conn.commit()

    async def on_a_loop() -> None:
        loop_reads = store.loop_reads(postgres_url)
        try:
            first = await loop_reads.run(_ticket(0))
            same = await asyncio.gather(*(loop_reads.run(_ticket(0)) for _ in range(50)))
            assert set(same) == {(first[0] + 1, 0)}  # sent once
            mixed = await asyncio.gather(*(loop_reads.run(_ticket(n % 5)) for n in range(50)))
            assert [asked for _, asked in mixed] == [n % 5 for n in range(50)]
            by_question = {asked: ticket for ticket, asked in mixed}
            assert sorted(by_question.values()) == list(range(first[0] + 2, first[0] + 7))
            assert all(by_question[asked] == ticket for ticket, asked in mixed)
            on_its_way = asyncio.ensure_future(loop_reads.run(_ticket(1, sleep_s=0.3)))
            await asyncio.sleep(0.1)  # sent, not answered
            later = await loop_reads.run(_ticket(1, sleep_s=0.3))
            assert later[0] == (await on_its_way)[0] + 1  # sent after it, not answered by it
        finally:
            await loop_reads.close()

    asyncio.run(on_a_loop())


def test_a_failed_read_fails_those_sent_with_it_and_the_next_connect_anew(
    postgres_url: str,
) -> None:
    """Reads sent together share their fate: one that fails fails the round trip (their
    callers answer the usual way), the connection is dropped, and the next reads are on a
    new one."""
    from service.runner import upgrade_db

    upgrade_db(postgres_url)
    _, study_id = _ann_and_her_study(postgres_url)
    read = store.read_study_access(study_id)
    expected = store.StudyAccess(owner="ann", public=False)

    async def on_a_loop() -> None:
        loop_reads = store.loop_reads(postgres_url)
        try:
            pid = await loop_reads.run(_pid_read())
            bad = store.Read(select(literal_column("1 / 0")), {}, bool)
            together = await asyncio.gather(
                loop_reads.run(read), loop_reads.run(bad), return_exceptions=True
            )
            assert all(isinstance(r, psycopg.Error) for r in together), together
            assert await loop_reads.run(read) == expected
            assert await loop_reads.run(_pid_read()) != pid
        finally:
            await loop_reads.close()

    asyncio.run(on_a_loop())
