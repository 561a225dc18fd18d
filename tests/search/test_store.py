"""Budget claims, completion and lost-trial bookkeeping on the hps_* tables."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from search import store


def _study(session, *, n_trials: int = 3, parallelism: int = 2) -> int:
    spec = {
        "name": "s",
        "dataset": {"name": "digits"},
        "search": {"sampler": "random", "parallelism": parallelism},
        "objective": {"metric": "dev_loss", "direction": "minimize"},
    }
    row = store.insert_study(
        session=session, spec=spec, optuna_study_name=f"o{id(spec)}", n_trials=n_trials
    )
    return row.id


def test_claims_respect_parallelism_and_n_trials(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        sid = _study(s, n_trials=3, parallelism=2)
    with store.session_scope(factory) as s:
        first = store.claim_trial(session=s, worker_id=None)
        second = store.claim_trial(session=s, worker_id=None)
        assert first and second
        assert store.claim_trial(session=s, worker_id=None) is None  # parallelism 2 reached
    with store.session_scope(factory) as s:
        assert store.finish_trial(
            session=s, trial_row_id=first.trial_row_id, state="COMPLETE", values={"value": 1.0}
        )
        third = store.claim_trial(session=s, worker_id=None)
        assert third is not None
    with store.session_scope(factory) as s:
        assert store.claim_trial(session=s, worker_id=None) is None  # n_trials 3 handed out
        for claim in (second, third):
            store.finish_trial(
                session=s, trial_row_id=claim.trial_row_id, state="PRUNED", values={}
            )
    with store.session_scope(factory) as s:
        row = store.get_study(session=s, study_id=sid)
        assert row is not None
        assert (row.status, row.claimed, row.running) == ("completed", 3, 0)
        assert row.finished_at is not None
        # Finishing twice is refused and leaves the counters alone.
        assert not store.finish_trial(
            session=s, trial_row_id=third.trial_row_id, state="FAIL", values={}
        )
        assert store.get_study(session=s, study_id=sid).running == 0


def test_cancelled_study_hands_out_nothing(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        sid = _study(s)
    with store.session_scope(factory) as s:
        assert store.cancel_study(session=s, study_id=sid)
        assert not store.cancel_study(session=s, study_id=sid)  # already cancelled
        assert store.claim_trial(session=s, worker_id=None) is None


def test_lost_trial_budget_is_returned_for_a_retry(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        sid = _study(s, n_trials=1, parallelism=1)
    with store.session_scope(factory) as s:
        claim = store.claim_trial(session=s, worker_id=None)
        assert claim is not None
    with store.session_scope(factory) as s:
        assert store.mark_lost_trials(session=s, grace_s=60) == []  # heartbeat is fresh
        s.execute(
            update(store.TrialRow)
            .where(store.TrialRow.id == claim.trial_row_id)
            .values(heartbeat_at=store.utcnow() - timedelta(seconds=120))
        )
    with store.session_scope(factory) as s:
        lost = store.mark_lost_trials(session=s, grace_s=60)
        assert [t.trial_row_id for t in lost] == [claim.trial_row_id]
        assert store.claim_trial(session=s, worker_id=None) is None  # budget still held
    with store.session_scope(factory) as s:
        # The worker coming back late cannot overwrite the lost trial.
        assert not store.finish_trial(
            session=s, trial_row_id=claim.trial_row_id, state="COMPLETE", values={}
        )
        assert store.release_lost_trial(session=s, trial_row_id=claim.trial_row_id, reason="x")
    with store.session_scope(factory) as s:
        row = store.get_study(session=s, study_id=sid)
        assert (row.status, row.claimed, row.running) == ("running", 0, 0)
        retry = store.claim_trial(session=s, worker_id=None)
        assert retry is not None and retry.trial_row_id != claim.trial_row_id


def test_leaderboard_and_counts_are_sorted_queries(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        sid = _study(s, n_trials=5, parallelism=5)
    values = [0.5, None, 0.1, 0.3, 0.2]
    states = ["COMPLETE", "FAIL", "COMPLETE", "PRUNED", "COMPLETE"]
    with store.session_scope(factory) as s:
        for number, (value, state) in enumerate(zip(values, states, strict=True)):
            claim = store.claim_trial(session=s, worker_id=None)
            store.attach_optuna_trial(
                session=s,
                trial_row_id=claim.trial_row_id,
                number=number,
                optuna_trial_id=number,
                params={"lr": number},
            )
            store.finish_trial(
                session=s, trial_row_id=claim.trial_row_id, state=state, values={"value": value}
            )
    with store.session_scope(factory) as s:
        row = store.get_study(session=s, study_id=sid)
        board = store.leaderboard(session=s, study=row, top=10)
        assert [(e.rank, e.trial.number, e.trial.value) for e in board] == [
            (1, 2, 0.1),
            (2, 4, 0.2),
            (3, 0, 0.5),
        ]
        assert store.trial_counts(session=s, study_ids=[sid])[sid] == {
            "COMPLETE": 3,
            "FAIL": 1,
            "PRUNED": 1,
        }
        assert row.status == "completed"


def test_live_workers_are_counted_per_host(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        a = store.register_worker(session=s, name="a", host="h1", pid=1, device="cpu")
        store.register_worker(session=s, name="b", host="h1", pid=2, device="cpu")
        store.register_worker(session=s, name="c", host="h2", pid=3, device="cpu")
        store.set_worker_state(session=s, worker_id=a, status="stopped")
    with store.session_scope(factory) as s:
        assert store.count_live_workers(session=s, host="h1", seen_within_s=60) == 1
        assert store.count_live_workers(session=s, host="h3", seen_within_s=60) == 0
        workers, count = store.list_workers(session=s, offset=0, limit=10, include_stopped=False)
        assert count == 2 and {w.name for w in workers} == {"b", "c"}


def test_plain_postgresql_urls_use_psycopg() -> None:
    assert store.normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store.normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store.normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    assert store.get_engine("postgresql://u@h/db").dialect.driver == "psycopg"
