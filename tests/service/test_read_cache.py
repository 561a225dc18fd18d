"""Polled study reads are exact and labelled with the study's version (service.read_cache):
an ETag that every visible change moves, 304 for an unchanged study, one answer made per
version and view (per reader for pages), and the routed access check before any of it.
SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, text, update

from search import store
from service.app import create_app
from service.client import HpsClient
from service.keys import revoke_key
from service.runner import upgrade_db
from service.settings import Settings
from tests.service.auth_helpers import Keys, bearer, make_keys, owned_study
from tests.study_data import end_trial

HTML = {"Accept": "text/html"}


@pytest.fixture
def world(migrated_url: str) -> Iterator[tuple[TestClient, Keys, Any]]:
    """An auth-on app, its keys, and its session factory."""
    settings = Settings(database_url=migrated_url, auth="on")
    with TestClient(create_app(settings, recover=False)) as client:
        yield client, make_keys(migrated_url), client.app.state.session_factory  # type: ignore[attr-defined]


def _urls(sid: int) -> list[str]:
    api = f"/api/v1/studies/{sid}"
    return [api, f"{api}/leaderboard?top=10", f"{api}/changes?cursor=0"] + [
        f"/studies/{sid}",
        f"/studies/{sid}/live?cursor=0",
    ]


def _running_trial(factory: Any, sid: int) -> int:
    with factory() as s:
        return int(
            s.scalars(
                select(store.TrialRow.id).where(
                    store.TrialRow.study_id == sid, store.TrialRow.state == store.T_RUNNING
                )
            ).one()
        )


def test_an_unchanged_study_answers_304_before_anything_is_made(world: Any) -> None:
    client, keys, factory = world
    sid = owned_study(factory, "alice")
    cache = client.app.state.read_cache
    for url in _urls(sid):
        alice = bearer(keys.alice) | HTML
        first = client.get(url, headers=alice)
        etag = first.headers["etag"]
        assert first.status_code == 200 and etag.startswith('W/"')
        assert first.headers["cache-control"] == "private, no-cache"
        made = cache.computed
        again = client.get(url, headers=alice | {"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag and cache.computed == made
        listed = client.get(url, headers=alice | {"If-None-Match": f'W/"other", {etag}'})
        assert listed.status_code == 304
        other = client.get(url, headers=alice | {"If-None-Match": 'W/"other"'})
        assert other.status_code == 200 and other.content == first.content
        assert cache.computed == made  # the same answer, made once for this version


def _changes(factory: Any, sid: int) -> list[tuple[str, Callable[[], None]]]:
    """Changes a reader can see, each made as the workers or the trial API make them."""
    trial = _running_trial(factory, sid)

    def write(do: Callable[[Any], None]) -> Callable[[], None]:
        def run() -> None:
            with store.session_scope(factory) as s:
                do(s)

        return run

    study = update(store.StudyRow).where(store.StudyRow.id == sid)
    return [
        ("a heartbeat", write(lambda s: store.renew_lease(session=s, trial_row_id=trial))),
        (
            "an epoch's report",
            write(
                lambda s: store.record_report(
                    session=s,
                    trial_row_id=trial,
                    curves={"epoch": [0], "train_loss": [0.9]},
                    metrics={"train_loss": 0.9},
                )
            ),
        ),
        (
            "parameters chosen",
            write(lambda s: store.set_trial_params(session=s, trial_row_id=trial, params={"a": 1})),
        ),
        ("made public", write(lambda s: store.set_public(session=s, study_id=sid, public=True))),
        ("a new column value", write(lambda s: s.execute(study.values(running=5)))),
        ("the trial's end", lambda: end_trial(factory, trial, "COMPLETE", {"value": 0.1})),
        ("cancelled", write(lambda s: store.cancel_study(session=s, study_id=sid))),
    ]


def test_every_change_a_reader_can_see_moves_the_version(world: Any) -> None:
    """Made behind the API's back, as the workers' writes are: the next read answers 200
    with the change, for every versioned read."""
    client, keys, factory = world
    sid = owned_study(factory, "alice")
    alice = bearer(keys.alice) | HTML
    etags = {url: client.get(url, headers=alice).headers["etag"] for url in _urls(sid)}
    seen = {url: {etag} for url, etag in etags.items()}
    for what, change in _changes(factory, sid):
        time.sleep(0.002)  # SQLite's clock has milliseconds: a heartbeat must move it
        change()
        for url in _urls(sid):
            answer = client.get(url, headers=alice | {"If-None-Match": etags[url]})
            assert answer.status_code == 200, f"{what}: {url} answered {answer.status_code}"
            etags[url] = answer.headers["etag"]
            assert etags[url] not in seen[url], f"{what}: {url} kept its version"
            seen[url].add(etags[url])
    study = client.get(f"/api/v1/studies/{sid}", headers=alice).json()
    assert study["status"] == "cancelled" and study["public"] is True


def test_every_read_checks_the_caller_first(world: Any) -> None:
    """A version sent back earns a 304 only from whom the database would give the answer,
    read at each request: not another user, not nobody, not a key revoked a moment ago, not
    after the study was made private."""
    client, keys, factory = world
    sid = owned_study(factory, "alice", public=True)
    for url in _urls(sid):
        etag = client.get(url, headers=bearer(keys.alice)).headers["etag"]
        asked = {"If-None-Match": etag}
        same = 200 if url == f"/studies/{sid}" else 304  # a page names its reader
        assert client.get(url, headers=bearer(keys.root) | asked).status_code == same  # admin
        assert client.get(url, headers=asked).status_code == same  # public: anyone
        assert client.get(url, headers=bearer("hps_not-a-key") | asked).status_code == 401
    with store.session_scope(factory) as s:
        store.set_public(session=s, study_id=sid, public=False)
    for url in _urls(sid):
        asked = {"If-None-Match": client.get(url, headers=bearer(keys.alice)).headers["etag"]}
        assert client.get(url, headers=asked).status_code == 401
        assert client.get(url, headers=bearer(keys.bob) | asked).status_code == 404
        assert client.get(url, headers=bearer(keys.alice) | asked).status_code == 304
    revoke_key(client.app.state.settings.database_url, "alice")
    for url in _urls(sid):
        assert client.get(url, headers=bearer(keys.alice)).status_code == 401


def test_pages_are_made_per_reader(world: Any) -> None:
    client, keys, factory = world
    sid = owned_study(factory, "alice")
    page = f"/studies/{sid}"
    as_alice = client.get(page, headers=bearer(keys.alice) | HTML)
    assert "signed in as alice" in as_alice.text
    asked = {"If-None-Match": as_alice.headers["etag"]}
    as_root = client.get(page, headers=bearer(keys.root) | HTML | asked)  # another reader
    assert as_root.status_code == 200 and as_root.headers["etag"] != as_alice.headers["etag"]
    assert "signed in as root" in as_root.text and "signed in as alice" not in as_root.text
    again = client.get(page, headers=bearer(keys.alice) | HTML)
    assert again.text == as_alice.text and "signed in as root" not in again.text
    # The live feed is the same for every reader: one version for all.
    live = f"/studies/{sid}/live?cursor=0"
    live_etag = client.get(live, headers=bearer(keys.alice)).headers["etag"]
    assert client.get(live, headers=bearer(keys.root)).headers["etag"] == live_etag


def test_answers_are_gzipped_or_plain_with_the_same_version(world: Any) -> None:
    client, keys, factory = world
    sid = owned_study(factory, "alice")
    url, alice = f"/studies/{sid}", bearer(keys.alice) | HTML
    zipped = client.get(url, headers=alice | {"Accept-Encoding": "gzip"})
    plain = client.get(url, headers=alice | {"Accept-Encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert zipped.text == plain.text and zipped.headers["etag"] == plain.headers["etag"]
    assert zipped.headers["content-security-policy"] and zipped.headers["x-request-id"]


def test_the_cli_client_asks_with_the_version_it_holds(world: Any) -> None:
    """The client (and so ``watch``) sends back the version it last got: an unchanged study
    answers 304 and the kept answer is returned; a script that sees its study end and then
    reads the board gets the end."""
    client, keys, factory = world
    sid = owned_study(factory, "alice")
    hps = HpsClient("http://testserver", api_key=keys.alice)
    hps._http = TestClient(client.app, headers=hps._http.headers)  # the same headers
    statuses: list[int] = []
    hps._http.event_hooks["response"].append(lambda r: statuses.append(r.status_code))
    first = hps.get_study(sid)
    assert first["status"] == "running" and hps.get_study(sid) == first
    assert statuses == [200, 304]
    first["status"] = "changed by the caller"  # a copy: the kept answer stays as sent
    assert hps.get_study(sid)["status"] == "running"
    with store.session_scope(factory) as s:
        store.cancel_study(session=s, study_id=sid)
    assert hps.get_study(sid)["status"] == "cancelled" and statuses[-1] == 200
    board = hps.leaderboard(sid, top=3)
    assert hps.leaderboard(sid, top=3) == board and statuses[-1] == 304


def test_a_server_that_dropped_every_connection_is_reconnected(postgres_url: str) -> None:
    """The caller's key is read on connections that are not pinged before use: after the
    server drops them (a restart), requests still succeed, on new connections."""
    upgrade_db(postgres_url)
    settings = Settings(database_url=postgres_url, auth="on")
    with TestClient(create_app(settings, recover=False)) as client:
        keys = make_keys(postgres_url)
        factory = client.app.state.session_factory  # type: ignore[attr-defined]
        sid = owned_study(factory, "alice")
        url, alice = f"/api/v1/studies/{sid}", bearer(keys.alice)
        assert client.get(url, headers=alice).status_code == 200
        with store.session_scope(factory) as s:
            s.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        for _ in range(3):
            assert client.get(url, headers=alice).status_code == 200
        assert client.get(url, headers=bearer(keys.bob)).status_code == 404


def test_bursts_of_readers_reuse_the_apis_connections(migrated_url: str) -> None:
    """Connections taken by a burst of concurrent readers are kept for the next, not closed
    and opened again (a new one costs a server process on PostgreSQL, a schema parse on
    SQLite; with SQLAlchemy's default pool the API opened several a second under load)."""
    settings = Settings(database_url=migrated_url, auth="on")
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
