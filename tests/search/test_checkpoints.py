"""Preempted trials, in-process on SQLite and PostgreSQL: a worker's SIGTERM saves the
trial's checkpoint with its hand-back, the slot's retry (another worker) resumes after
that epoch and ends with exactly the metrics, curves and Optuna values of the same trial
never interrupted, and the checkpoint is gone once the slot is done. Checkpoints also go
when a slot's last attempt fails for good and when a study is cancelled."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
from sqlalchemy import select

from models import train
from search import store
from search.lifecycle import StartedTrial, begin_trial, end_trial, reap_lost_trials
from search.outcome import Outcome, TrialCheckpoint
from search.spec import ExperimentSpec
from search.studies import create_study, get_storage
from search.worker import STOPPED_REASON, Worker, WorkerOptions

# Every piece of training state that a resume must restore: dropout, batch norm, Adam's
# moments, a warm-up then cosine lr schedule, early stopping.
SPEC = {
    "name": "preempted",
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": 1,
        "parallelism": 1,
        "seed": 4,
        "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    },
    "training": {
        "epochs": 6,
        "hidden": [32, 16],
        "keep_prob": 0.8,
        "batch_norm": True,
        "optimizer": "adam",
        "lr_schedule": "cosine",
        "lr_warmup_epochs": 1,
        "patience": 3,
    },
}
STOP_AT = 3


def _create(url: str, pruner: str = "none") -> int:
    spec = ExperimentSpec.model_validate(SPEC | {"pruning": {"pruner": pruner}})
    factory = store.make_session_factory(url)
    return create_study(session_factory=factory, storage_url=url, spec=spec).id


def _trials(url: str, study_id: int) -> list[store.TrialRow]:
    with store.session_scope(store.make_session_factory(url)) as s:
        stmt = select(store.TrialRow).where(store.TrialRow.study_id == study_id)
        return list(s.scalars(stmt.order_by(store.TrialRow.id)))


def _checkpoints(url: str) -> list[tuple[int, int, int]]:
    with store.session_scope(store.make_session_factory(url)) as s:
        rows = s.execute(
            select(
                store.CheckpointRow.study_id, store.CheckpointRow.slot, store.CheckpointRow.epoch
            )
        )
        return [tuple(r) for r in rows]


def _optuna_trials(url: str, study_id: int) -> list[optuna.trial.FrozenTrial]:
    with store.session_scope(store.make_session_factory(url)) as s:
        name = store.get_study(session=s, study_id=study_id).optuna_study_name
    return optuna.load_study(study_name=name, storage=get_storage(url)).trials


@pytest.fixture
def signal_handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _sigterm_at(epoch: int) -> Any:
    """``models.train`` with a SIGTERM raised (through the worker's own handler) as the
    run reports ``epoch``."""

    def train_then_sigterm(config: Any, data: Any, on_epoch: Any, **kwargs: Any) -> Any:
        def hook(m: Any) -> bool:
            if m.epoch == epoch:
                signal.raise_signal(signal.SIGTERM)
            return bool(on_epoch(m))

        return train(config, data, hook, **kwargs)

    return train_then_sigterm


@pytest.mark.parametrize("pruner", ["none", "median"])
def test_a_preempted_trial_resumes_and_ends_as_if_never_interrupted(
    migrated_url: str, signal_handlers: None, pruner: str
) -> None:
    straight, preempted = _create(migrated_url, pruner), _create(migrated_url, pruner)
    options = WorkerOptions(db_url=migrated_url, exit_when_idle=True, study_id=straight)
    assert Worker(options).run() == 1

    first = Worker(
        WorkerOptions(db_url=migrated_url, study_id=preempted), train=_sigterm_at(STOP_AT)
    )
    first.install_signal_handlers()
    assert first.run() == 1
    (stopped,) = _trials(migrated_url, preempted)
    assert (stopped.state, stopped.reason, stopped.epochs_run) == ("FAIL", STOPPED_REASON, STOP_AT)
    assert _checkpoints(migrated_url) == [(preempted, 0, STOP_AT)]

    options = WorkerOptions(db_url=migrated_url, exit_when_idle=True, study_id=preempted)
    assert Worker(options).run() == 1
    (reference,) = _trials(migrated_url, straight)
    stopped, resumed = _trials(migrated_url, preempted)
    assert (resumed.state, resumed.resumed_from, resumed.slot) == ("COMPLETE", STOP_AT, 0)
    assert reference.resumed_from is None
    # Bitwise: the same floats, not merely close ones.
    assert (resumed.value, resumed.metrics) == (reference.value, reference.metrics)
    assert (resumed.curves, resumed.epochs_run) == (reference.curves, reference.epochs_run)
    assert (resumed.best_epoch, resumed.stopped_early_at) == (
        reference.best_epoch,
        reference.stopped_early_at,
    )
    assert stopped.curves["dev_loss"] == reference.curves["dev_loss"][: STOP_AT + 1]
    assert _checkpoints(migrated_url) == []  # the slot is done
    # Optuna's trial for the retry has every epoch's value, the resumed ones included.
    (frozen,) = _optuna_trials(migrated_url, straight)
    failed, done = _optuna_trials(migrated_url, preempted)
    assert done.intermediate_values == frozen.intermediate_values
    assert (done.state, done.value) == (frozen.state, frozen.value)
    assert sorted(failed.intermediate_values) == list(range(STOP_AT + 1))


def _begin(url: str, study_id: int) -> tuple[StartedTrial, int]:
    factory = store.make_session_factory(url)
    with store.session_scope(factory) as s:
        wid = store.register_worker(session=s, name="w", host="h", pid=1, device="cpu")
    ctx = Worker(WorkerOptions(db_url=url)).studies[study_id].ctx
    with store.session_scope(factory) as s:
        started = begin_trial(session=s, ctx=ctx, worker_id=wid)
    assert started is not None
    return started, wid


def _hand_back(url: str, started: StartedTrial, wid: int, data: bytes = b"state") -> None:
    outcome = Outcome("FAIL", None, STOPPED_REASON, None, retry=True)
    outcome.checkpoint = TrialCheckpoint(2, data)
    _end(url, started, wid, outcome)


def _end(url: str, started: StartedTrial, wid: int, outcome: Outcome) -> None:
    with store.session_scope(store.make_session_factory(url)) as s:
        assert end_trial(
            session=s,
            started=started,
            outcome=outcome,
            new_intermediate_values={},
            duration_s=0.1,
            worker_id=wid,
        )


def _stored(url: str, study_id: int) -> store.StoredCheckpoint | None:
    with store.session_scope(store.make_session_factory(url)) as s:
        return store.slot_checkpoint(session=s, study_id=study_id, slot=0)


def test_a_checkpoint_is_kept_for_the_retry_replaced_and_checked(migrated_url: str) -> None:
    sid = _create(migrated_url)
    _hand_back(migrated_url, *_begin(migrated_url, sid), data=b"first")
    assert _stored(migrated_url, sid) == store.StoredCheckpoint(2, b"first")
    _hand_back(migrated_url, *_begin(migrated_url, sid), data=b"second")  # the retry, stopped
    assert _stored(migrated_url, sid) == store.StoredCheckpoint(2, b"second")
    with store.session_scope(store.make_session_factory(migrated_url)) as s:
        s.execute(store.CheckpointRow.__table__.update().values(data=b"damaged"))
    assert _stored(migrated_url, sid) is None  # its bytes no longer hash to its sha256


def test_the_last_attempt_at_a_slot_drops_its_checkpoint(migrated_url: str) -> None:
    sid = _create(migrated_url)
    first, wid = _begin(migrated_url, sid)
    assert not first.retried
    _hand_back(migrated_url, first, wid)
    retry, wid = _begin(migrated_url, sid)
    assert retry.retried and retry.slot == first.slot
    # Whether or not it could use the checkpoint (an adaptive sampler's retry cannot).
    _end(migrated_url, retry, wid, Outcome("FAIL", None, "error: boom", None))
    assert _checkpoints(migrated_url) == []


def test_a_slot_that_fails_for_good_drops_its_checkpoint(migrated_url: str) -> None:
    from datetime import timedelta

    sid = _create(migrated_url)
    _hand_back(migrated_url, *_begin(migrated_url, sid))
    started, _ = _begin(migrated_url, sid)  # the retry's worker is then lost, once too often
    with store.session_scope(store.make_session_factory(migrated_url)) as s:
        s.execute(
            store.TrialRow.__table__.update()
            .where(store.TrialRow.id == started.trial_row_id)
            .values(heartbeat_at=store.utcnow() - timedelta(seconds=120))
        )
    factory = store.make_session_factory(migrated_url)
    assert reap_lost_trials(session_factory=factory, grace_s=30, max_retries=0) == 1
    assert _trials(migrated_url, sid)[-1].retry_pending is False
    assert _checkpoints(migrated_url) == []


def test_cancelling_a_study_drops_its_checkpoints(migrated_url: str) -> None:
    sid, other = _create(migrated_url), _create(migrated_url)
    _hand_back(migrated_url, *_begin(migrated_url, sid))
    _hand_back(migrated_url, *_begin(migrated_url, other))
    with store.session_scope(store.make_session_factory(migrated_url)) as s:
        assert store.cancel_study(session=s, study_id=sid)
    assert _checkpoints(migrated_url) == [(other, 0, 2)]
    # A stop for a retry that lands after the cancel keeps nothing either.
    started, wid = _begin(migrated_url, other)
    with store.session_scope(store.make_session_factory(migrated_url)) as s:
        assert store.cancel_study(session=s, study_id=other)
    _hand_back(migrated_url, started, wid)
    assert _checkpoints(migrated_url) == []
