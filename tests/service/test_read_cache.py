"""Polled study reads answered from recent answers (service.read_cache): shared for JSON,
per reader for pages, never to a caller the database would refuse, dropped when a change
goes through the API, bypassed by ``Cache-Control: no-cache``; and watchers' change cursors
answered from one shared snapshot (service.recent_changes). SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, event, select, text, update

from search import store
from service.app import create_app
from service.client import HpsClient
from service.keys import revoke_key
from service.recent_changes import RecentChanges
from service.runner import upgrade_db
from service.settings import Settings
from tests.service.auth_helpers import Keys, bearer, make_keys, owned_study
from tests.study_data import Made, end_trial, make_study, params

HTML = {"Accept": "text/html"}
FRESH = {"Cache-Control": "no-cache"}


@pytest.fixture
def world(migrated_url: str) -> Iterator[tuple[TestClient, Keys, Any]]:
    """An auth-on app whose answers stay good for a minute (so nothing here expires by
    accident), its keys, and its session factory."""
    settings = Settings(database_url=migrated_url, auth="on", read_cache_s=60)
    with TestClient(create_app(settings, recover=False)) as client:
        yield client, make_keys(migrated_url), client.app.state.session_factory  # type: ignore[attr-defined]


def _set_status(factory: Any, sid: int, status: str) -> None:
    """A change made behind the API's back (as a worker's would be)."""
    with store.session_scope(factory) as s:
        s.execute(update(store.StudyRow).where(store.StudyRow.id == sid).values(status=status))


def test_answers_are_reused_until_fresh_ones_are_asked_for(world: Any) -> None:
    client, keys, factory = world
    sid = owned_study(factory, "alice")
    url, alice = f"/api/v1/studies/{sid}", bearer(keys.alice)
    before = client.get(url, headers=alice).json()
    _set_status(factory, sid, store.CANCELLED)
    assert client.get(url, headers=alice).json() == before  # a poll within the age
    fresh = client.get(url, headers=alice | FRESH).json()
    assert fresh["status"] == "cancelled" and fresh != before
    assert client.get(url, headers=alice).json() == fresh  # and it is kept
    cache = client.app.state.read_cache
    assert cache.served >= 2 and cache.computed == 2


def test_answers_expire(migrated_url: str) -> None:
    settings = Settings(database_url=migrated_url, auth="off", read_cache_s=0.2)
    with TestClient(create_app(settings, recover=False)) as client:
        factory = client.app.state.session_factory  # type: ignore[attr-defined]
        sid = owned_study(factory, None)
        assert client.get(f"/api/v1/studies/{sid}").json()["status"] == "running"
        _set_status(factory, sid, store.CANCELLED)
        time.sleep(0.3)
        assert client.get(f"/api/v1/studies/{sid}").json()["status"] == "cancelled"


def test_zero_turns_the_cache_off(migrated_url: str) -> None:
    settings = Settings(database_url=migrated_url, auth="off", read_cache_s=0)
    with TestClient(create_app(settings, recover=False)) as client:
        factory = client.app.state.session_factory  # type: ignore[attr-defined]
        sid = owned_study(factory, None)
        client.get(f"/api/v1/studies/{sid}/leaderboard")
        _set_status(factory, sid, store.CANCELLED)
        assert client.get(f"/api/v1/studies/{sid}").json()["status"] == "cancelled"
        assert client.app.state.read_cache.served == 0  # type: ignore[attr-defined]


def test_every_hit_checks_the_caller(world: Any) -> None:
    """A kept answer goes only to whom the database would give it, read at each request:
    not another user, not nobody, not a key revoked a moment ago."""
    client, keys, factory = world
    sid = owned_study(factory, "alice")
    urls = [f"/api/v1/studies/{sid}", f"/api/v1/studies/{sid}/leaderboard?top=10"]
    urls += [f"/api/v1/studies/{sid}/changes?cursor=0", f"/studies/{sid}/live?cursor=0"]
    for url in urls:
        assert client.get(url, headers=bearer(keys.alice)).status_code == 200
        assert client.get(url, headers=bearer(keys.root)).status_code == 200  # an admin
        assert client.get(url, headers=bearer(keys.bob)).status_code == 404
        assert client.get(url).status_code == 401
        assert client.get(url, headers=bearer("hps_not-a-key")).status_code == 401
    revoke_key(client.app.state.settings.database_url, "alice")
    for url in urls:
        assert client.get(url, headers=bearer(keys.alice)).status_code == 401


def _age(client: TestClient, seconds: float) -> None:
    """Make every kept answer (and the study summaries they are made from) older."""
    state = client.app.state  # type: ignore[attr-defined]
    for cache in (state.read_cache, state.study_summaries):
        for key, (made, value) in list(cache._entries.items()):
            cache._entries[key] = (made - seconds, value)


def test_while_one_caller_remakes_an_aged_out_answer_the_others_get_it(world: Any) -> None:
    """Pollers that ask while an aged-out answer is being made anew get the one before
    (checked like any other) instead of queueing behind that one computation; a caller who
    asks for a fresh one still gets it."""
    client, keys, factory = world
    sid = owned_study(factory, "alice")
    url, alice = f"/api/v1/studies/{sid}", bearer(keys.alice)
    assert client.get(url, headers=alice).json()["status"] == "running"
    _set_status(factory, sid, store.CANCELLED)
    cache = client.app.state.read_cache
    _age(client, 61)  # past its age of 60 s
    assert cache.peek((url, "", None), stale_for=60) is None  # one caller goes to remake it
    served = cache.served
    assert client.get(url, headers=alice).json()["status"] == "running"  # the one before
    assert cache.served == served + 1
    assert client.get(url, headers=bearer(keys.bob)).status_code == 404  # still checked
    assert client.get(url, headers=alice | FRESH).json()["status"] == "cancelled"
    assert client.get(url, headers=alice).json()["status"] == "cancelled"


def test_an_aged_out_answer_is_remade_by_the_first_caller(world: Any) -> None:
    client, keys, factory = world
    sid = owned_study(factory, "alice")
    url, alice = f"/api/v1/studies/{sid}", bearer(keys.alice)
    assert client.get(url, headers=alice).json()["status"] == "running"
    _set_status(factory, sid, store.CANCELLED)
    _age(client, 61)
    assert client.get(url, headers=alice).json()["status"] == "cancelled"


def test_a_server_that_dropped_every_connection_is_reconnected(postgres_url: str) -> None:
    """The access reads' connections are not pinged before use: after the server drops
    them (a restart), requests still succeed, on new connections."""
    upgrade_db(postgres_url)
    settings = Settings(database_url=postgres_url, auth="on", read_cache_s=60)
    with TestClient(create_app(settings, recover=False)) as client:
        keys = make_keys(postgres_url)
        factory = client.app.state.session_factory  # type: ignore[attr-defined]
        sid = owned_study(factory, "alice")
        url, alice = f"/api/v1/studies/{sid}", bearer(keys.alice)
        assert client.get(url, headers=alice).status_code == 200
        assert client.get(url, headers=alice).status_code == 200  # a kept answer
        with store.session_scope(factory) as s:
            s.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        for headers in (alice | FRESH, alice, alice):  # routed first, then kept answers
            assert client.get(url, headers=headers).status_code == 200
        assert client.get(url, headers=bearer(keys.bob)).status_code == 404


def test_a_study_made_private_is_refused_at_once(world: Any) -> None:
    client, keys, factory = world
    sid = owned_study(factory, "alice", public=True)
    url = f"/api/v1/studies/{sid}/leaderboard?top=10"
    assert client.get(url).status_code == 200  # public: no key needed, and now kept
    with store.session_scope(factory) as s:  # behind the API's back: the access check
        store.set_public(session=s, study_id=sid, public=False)
    assert client.get(url).status_code == 401
    assert client.get(url, headers=bearer(keys.bob)).status_code == 404


def test_changes_made_through_the_api_show_at_once(world: Any) -> None:
    client, keys, factory = world
    sid = owned_study(factory, "alice")
    alice = bearer(keys.alice)
    assert client.get(f"/api/v1/studies/{sid}", headers=alice).json()["public"] is False
    client.patch(f"/api/v1/studies/{sid}", json={"public": True}, headers=alice)
    assert client.get(f"/api/v1/studies/{sid}", headers=alice).json()["public"] is True
    assert client.post(f"/api/v1/studies/{sid}/cancel", headers=alice).status_code == 200
    assert client.get(f"/api/v1/studies/{sid}", headers=alice).json()["status"] == "cancelled"


def test_pages_are_kept_per_reader(world: Any) -> None:
    client, keys, factory = world
    sid = owned_study(factory, "alice")
    page = f"/studies/{sid}"
    assert "signed in as alice" in client.get(page, headers=bearer(keys.alice) | HTML).text
    as_root = client.get(page, headers=bearer(keys.root) | HTML).text
    assert "signed in as root" in as_root and "signed in as alice" not in as_root
    again = client.get(page, headers=bearer(keys.alice) | HTML).text  # from the cache
    assert "signed in as alice" in again and "signed in as root" not in again
    assert client.app.state.read_cache.served >= 1


def test_kept_answers_are_sent_gzipped_or_plain(world: Any) -> None:
    client, keys, factory = world
    sid = owned_study(factory, "alice")
    url, alice = f"/studies/{sid}", bearer(keys.alice) | HTML
    first = client.get(url, headers=alice | {"Accept-Encoding": "gzip"})
    zipped = client.get(url, headers=alice | {"Accept-Encoding": "gzip"})  # from the cache
    plain = client.get(url, headers=alice | {"Accept-Encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert zipped.text == plain.text == first.text
    with client.stream("GET", url, headers=alice | {"Accept-Encoding": "gzip"}) as raw:
        assert gzip.decompress(b"".join(raw.iter_raw())).decode() == plain.text
    assert zipped.headers["content-security-policy"] and zipped.headers["x-request-id"]


def test_watchers_cursors_meet_in_one_snapshot(migrated_url: str) -> None:
    """Each cursor gets exactly what changes_since gives it, from one read, and every
    watcher leaves with the same next cursor."""
    factory = store.make_session_factory(migrated_url)
    made = [Made("COMPLETE", 0.5 - i / 100, params(0.01 * (i + 1))) for i in range(6)]
    sid = make_study(factory, made, running=2)
    recent = RecentChanges(ttl_s=60)
    with factory() as session:
        row = store.get_study(session=session, study_id=sid)
        assert row is not None
        first = recent.since(session, row, 2)  # reads the snapshot from cursor 2
        answers = {c: recent.since(session, row, c) for c in (2, 3, 5, 6)}
        assert recent.reads == 1
        for cursor, got in answers.items():
            want = store.changes_since(session=session, study=row, cursor=cursor)
            assert [t.number for t in got.finished] == [t.number for t in want.finished]
            assert [t.number for t in got.running] == [t.number for t in want.running] == [6, 7]
            assert got.cursor == first.cursor == 6
        older = recent.since(session, row, 0)  # before the snapshot: read on its own
        assert [t.number for t in older.finished] == list(range(6)) and recent.reads == 2


def test_a_stale_snapshot_is_read_again_from_the_watchers_cursor(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    sid = make_study(factory, [Made("COMPLETE", 0.5, params(0.01))], running=2)
    recent = RecentChanges(ttl_s=0.2)
    with factory() as session:
        row = store.get_study(session=session, study_id=sid)
        assert row is not None
        assert recent.since(session, row, 0).cursor == 1
        running = session.scalars(
            select(store.TrialRow.id).where(
                store.TrialRow.study_id == sid, store.TrialRow.number == 1
            )
        ).one()
    end_trial(factory, running, "COMPLETE", {"value": 0.2, "epochs_run": 3})
    time.sleep(0.3)
    with factory() as session:
        row = store.get_study(session=session, study_id=sid)
        assert row is not None
        later = recent.since(session, row, 1)
        assert [t.number for t in later.finished] == [1] and later.cursor == 2
        assert [t.number for t in later.running] == [2]


def test_a_hit_on_sqlite_needs_no_pooled_connection(tmp_path: Path) -> None:
    """The event loop checks a kept answer's reader on a connection of its own: with every
    pooled connection taken (by requests that may be waiting for the loop), a hit is still
    answered, instead of the loop waiting for the pool (which deadlocked 50 pollers)."""
    url = f"sqlite:///{tmp_path / 'hps.db'}"
    upgrade_db(url)
    settings = Settings(database_url=url, auth="off", read_cache_s=60)
    with TestClient(create_app(settings, recover=False)) as client:
        factory = client.app.state.session_factory  # type: ignore[attr-defined]
        sid = owned_study(factory, None)
        assert client.get(f"/api/v1/studies/{sid}").status_code == 200
        engine = client.app.state.access_engine  # type: ignore[attr-defined]
        taken = [engine.raw_connection() for _ in range(engine.pool.size() + 10)]
        try:
            served = client.app.state.read_cache.served  # type: ignore[attr-defined]
            assert client.get(f"/api/v1/studies/{sid}").status_code == 200
            assert client.app.state.read_cache.served == served + 1  # type: ignore[attr-defined]
        finally:
            for connection in taken:
                connection.close()


class _NoConnections:
    """An engine whose pool is empty for good (every pooled connection taken)."""

    def __init__(self, engine: Any) -> None:
        self.dialect = engine.dialect

    def raw_connection(self) -> Any:
        raise RuntimeError("no pooled connection to be had")


def test_a_hit_is_checked_in_one_read_on_the_loops_own_connection(migrated_url: str) -> None:
    """On both backends a kept answer's check (a key, a browser session or nobody; and the
    study) is one read on the event loop's own connection, never a pooled one: with the pool
    empty for good, hits are still answered (a routed request would fail). And it still
    refuses whom the database would refuse: those go on to the routes."""
    settings = Settings(database_url=migrated_url, auth="on", read_cache_s=60)
    with (
        TestClient(create_app(settings, recover=False)) as client,
        TestClient(client.app) as browser,
    ):
        keys = make_keys(migrated_url)
        state = client.app.state  # type: ignore[attr-defined]
        sid = owned_study(state.session_factory, "alice")
        public = owned_study(state.session_factory, "bob", public=True)
        form = {"key": keys.alice}
        assert browser.post("/signin", data=form, follow_redirects=False).status_code == 303
        status, board = f"/api/v1/studies/{sid}", f"/api/v1/studies/{sid}/leaderboard"
        public_board, page = f"/api/v1/studies/{public}/leaderboard", f"/studies/{sid}"
        for url in (status, board, public_board):
            assert client.get(url, headers=bearer(keys.alice)).status_code == 200  # kept
        assert browser.get(page, headers=HTML).status_code == 200  # kept for this session
        reads = []
        loop_run = state.loop_reads.run

        async def counted(read: Any) -> Any:
            reads.append(read)
            return await loop_run(read)

        state.loop_reads.run = counted
        pooled, state.access_engine = state.access_engine, _NoConnections(state.access_engine)
        try:
            served = state.read_cache.served
            assert client.get(status, headers=bearer(keys.alice)).status_code == 200
            assert browser.get(board).status_code == 200  # alice's, through her session
            assert client.get(public_board).status_code == 200  # nobody: a public study
            assert "alice" in browser.get(page, headers=HTML).text
            assert state.read_cache.served == served + 4 and len(reads) == 4  # one read each
        finally:
            state.access_engine = pooled
        for url in (status, board):
            assert client.get(url, headers=bearer(keys.bob)).status_code == 404
            assert client.get(url).status_code == 401
            assert client.get(url, headers=bearer("hps_wrong")).status_code == 401
        assert client.get(page, headers=bearer(keys.bob) | HTML).status_code == 404  # no hit
        with store.session_scope(state.session_factory) as s:
            s.execute(delete(store.WebSessionRow))  # signed out behind the API's back
        signed_out = browser.get(page, headers=HTML, follow_redirects=False)
        assert signed_out.status_code == 303
        assert signed_out.headers["location"].startswith("/signin")
        assert state.read_cache.served == served + 4 + 7  # refused hits went on to the routes


def test_the_cli_client_always_reads_fresh(world: Any) -> None:
    """A script that sees its study end and then reads the board must get the end."""
    client, keys, factory = world
    sid = owned_study(factory, "alice")
    hps = HpsClient("http://testserver", api_key=keys.alice)
    hps._http = TestClient(client.app, headers=hps._http.headers)  # the same headers
    assert hps.get_study(sid)["status"] == "running"
    _set_status(factory, sid, store.COMPLETED)
    assert hps.get_study(sid)["status"] == "completed"


def test_bursts_of_readers_reuse_the_apis_connections(migrated_url: str) -> None:
    """Connections taken by a burst of concurrent readers are kept for the next, not closed
    and opened again (a new one costs a server process on PostgreSQL, a schema parse on
    SQLite; with SQLAlchemy's default pool the API opened several a second under load)."""
    settings = Settings(database_url=migrated_url, auth="on", read_cache_s=0)
    with TestClient(create_app(settings, recover=False)) as client:
        keys = make_keys(migrated_url)
        sid = owned_study(client.app.state.session_factory, "alice")  # type: ignore[attr-defined]
        opened, closed = [], []
        for engine in (store.get_engine(migrated_url), store.access_engine(migrated_url)):
            event.listen(engine, "connect", lambda *_: opened.append(1))
            event.listen(engine, "close", lambda *_: closed.append(1))

        def read(_: int) -> int:
            return client.get(f"/api/v1/studies/{sid}", headers=bearer(keys.alice)).status_code

        for _ in range(3):
            with ThreadPoolExecutor(max_workers=8) as pool:
                assert set(pool.map(read, range(32))) == {200}
        assert opened and not closed
