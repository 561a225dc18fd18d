"""The reads a request makes before its route, on the access engine: its caller's key
(search.store.read_caller_key), by the key's hash or by a live browser session signed in
with it, and a study's owner (search.store.read_study_owner), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from search import store


def test_the_callers_key_by_hash_or_by_live_session(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        key = store.insert_key(session=s, name="k", user="ann", token_hash="h1", admin=True)
        for token, hours in (("live", 1), ("gone", -1)):
            store.insert_web_session(
                session=s, key_id=key.id, token_hash=token, lifetime=timedelta(hours=hours)
            )
        store.touch_key(session=s, key_id=key.id, older_than=store.utcnow())
        key_id = key.id
    with factory() as s:
        row = s.get(store.ApiKeyRow, key_id)
        assert row is not None and row.last_used_at is not None
        want = store.KeyRecord(key_id, "k", "ann", True, "h1", row.last_used_at)
    engine = store.access_engine(migrated_url)
    assert store.read_caller_key(engine, key_hash="h1") == want
    assert store.read_caller_key(engine, session_hash="live") == want
    assert store.read_caller_key(engine, session_hash="gone") is None  # expired
    assert store.read_caller_key(engine, key_hash="nope") is None
    assert store.read_caller_key(engine, session_hash="h1") is None  # a key is no session


def test_a_studys_owner_and_visibility_as_they_are_now(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    spec = {"name": "s", "search": {"sampler": "random", "parallelism": 1}}
    spec |= {"objective": {"metric": "dev_loss", "direction": "minimize"}}
    with store.session_scope(factory) as s:
        unowned = store.insert_study(session=s, spec=spec, optuna_study_name="o1", n_trials=1)
        anns = store.insert_study(
            session=s, spec=spec, optuna_study_name="o2", n_trials=1, owner="ann"
        )
        ids = unowned.id, anns.id
    engine = store.access_engine(migrated_url)
    assert store.read_study_owner(engine, study_id=ids[0]) == store.StudyOwner(ids[0], None, False)
    assert store.read_study_owner(engine, study_id=ids[1]) == store.StudyOwner(ids[1], "ann", False)
    assert store.read_study_owner(engine, study_id=ids[1] + 1) is None
    with store.session_scope(factory) as s:  # made public: the next read says so
        store.set_public(session=s, study_id=ids[1], public=True)
    assert store.read_study_owner(engine, study_id=ids[1]) == store.StudyOwner(ids[1], "ann", True)
