"""Batched workers (``--batch-trials``), in-process on SQLite and PostgreSQL: the trials of
a claim train as stacks, and each keeps the lifecycle of a trial alone: the same
configuration per slot and the same result (to float32 rounding) as a worker training one
at a time, its own end recorded the moment it leaves the stack, Optuna's side in
agreement, the worker shown with what it trains together."""

from __future__ import annotations

import math
from typing import Any

import pytest
from sqlalchemy import select

from search import store
from search.agreement import check_agreement
from search.spec import ExperimentSpec
from search.studies import create_study
from search.worker import Worker, WorkerOptions

TOL = 1e-3  # float32 stacked vs alone (tests/models/test_stacked.py measures 4.1e-4)

SPEC: dict[str, Any] = {
    "name": "stacked",
    "dataset": "iris",
    "search": {
        "sampler": "random",
        "n_trials": 8,
        "parallelism": 8,
        "seed": 3,
        "space": {
            "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
            "keep_prob": {"type": "float", "low": 0.6, "high": 1.0},
        },
    },
    "training": {"epochs": 4, "batch_size": 16, "hidden": [16]},
}


def _create(url: str, spec: dict[str, Any]) -> int:
    factory = store.make_session_factory(url)
    validated = ExperimentSpec.model_validate(spec)
    return create_study(session_factory=factory, storage_url=url, spec=validated).id


def _trials(url: str, study_id: int) -> list[store.TrialRow]:
    t = store.TrialRow
    with store.session_scope(store.make_session_factory(url, read_only=True)) as s:
        return list(s.scalars(select(t).where(t.study_id == study_id).order_by(t.slot, t.id)))


def _run(url: str, study_id: int, batch: int) -> int:
    options = WorkerOptions(db_url=url, study_id=study_id, batch_trials=batch, exit_when_idle=True)
    return Worker(options).run()


def _agreement(url: str) -> list[str]:
    with store.session_scope(store.make_session_factory(url, read_only=True)) as s:
        return [str(d) for d in check_agreement(session=s)]


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= TOL * max(1.0, abs(a))


CNN_SPEC: dict[str, Any] = SPEC | {
    "dataset": "digits",
    "model": "cnn",
    "training": {
        "epochs": 1,
        "batch_size": 32,
        "hidden": [16],
        "conv": [{"channels": 4}, {"channels": 6, "pool": "avg"}],
    },
}


@pytest.mark.parametrize("spec", [SPEC, CNN_SPEC], ids=["mlp", "cnn"])
def test_a_batched_worker_gives_each_slot_what_it_would_get_alone(
    migrated_url: str, spec: dict[str, Any]
) -> None:
    stacked, alone = _create(migrated_url, spec), _create(migrated_url, spec)
    assert _run(migrated_url, stacked, 8) == 8
    assert _run(migrated_url, alone, 1) == 8
    a, b = _trials(migrated_url, stacked), _trials(migrated_url, alone)
    assert [t.slot for t in a] == [t.slot for t in b] == list(range(8))
    assert {t.stack for t in a} == {min(t.number for t in a if t.number is not None)}
    assert {t.stack for t in b} == {None}
    for s, o in zip(a, b, strict=True):
        assert (s.state, s.params, s.epochs_run) == (o.state, o.params, o.epochs_run)
        assert _close(s.value, o.value), (s.slot, s.value, o.value)
        for curve in ("train_loss", "dev_loss"):
            pairs = zip(s.curves[curve], o.curves[curve], strict=True)
            assert all(_close(x, y) for x, y in pairs), (s.slot, curve)
    with store.session_scope(store.make_session_factory(migrated_url)) as s:
        (worker, _) = s.scalars(select(store.WorkerRow).order_by(store.WorkerRow.id)).all()
        assert (worker.status, worker.stack, worker.trial_number) == ("stopped", None, None)
    assert _agreement(migrated_url) == []


def test_a_diverging_trial_leaves_the_stack_and_is_recorded_at_once(migrated_url: str) -> None:
    """SGD at lr 0.2..50: some trials climb past 3x their initial loss within an epoch and
    are pruned there, on their own, before their stack-mates end (the change cursor,
    ``seq``, orders the ends); the rest train their 6 epochs."""
    spec = SPEC | {
        "search": SPEC["search"]
        | {"space": {"lr": {"type": "float", "low": 0.2, "high": 50.0, "log": True}}},
        "training": SPEC["training"] | {"optimizer": "sgd", "epochs": 6},
    }
    sid = _create(migrated_url, spec)
    assert _run(migrated_url, sid, 8) == 8
    trials = _trials(migrated_url, sid)
    diverged = [t for t in trials if t.reason == "diverged"]
    finished = [t for t in trials if t.epochs_run == 6]
    assert diverged and finished, [(t.state, t.reason, t.epochs_run) for t in trials]
    assert all(t.state == "PRUNED" and t.epochs_run < 6 for t in diverged)
    assert max(t.seq or 0 for t in diverged) < min(t.seq or 0 for t in finished)
    assert {t.stack for t in trials} == {0}
    assert _agreement(migrated_url) == []


def test_trials_that_cannot_share_a_stack_train_apart(migrated_url: str) -> None:
    """Depth 1 or 2 and two batch sizes: the claim splits into stacks of one layout and
    batch size each (the stack's first number shared by its trials), and every slot runs
    once; Optuna's median pruner judges each trial's epochs as they come."""
    spec = SPEC | {
        "search": SPEC["search"]
        | {
            "n_trials": 12,
            "parallelism": 12,
            "space": {
                "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
                "hidden": {"type": "layers", "depth": [1, 2], "units": [8, 8]},
                "batch_size": {"type": "categorical", "choices": [16, 32]},
            },
        },
        "pruning": {"pruner": "median", "warmup_epochs": 1},
    }
    sid = _create(migrated_url, spec)
    assert _run(migrated_url, sid, 12) == 12
    trials = _trials(migrated_url, sid)
    assert [t.slot for t in trials] == list(range(12))
    assert all(t.state in ("COMPLETE", "PRUNED") for t in trials)
    stacks: dict[int | None, set[tuple[int, int]]] = {}
    for t in trials:
        stacks.setdefault(t.stack, set()).add((len(t.params["hidden"]), t.params["batch_size"]))
    assert all(len(kinds) == 1 for s, kinds in stacks.items() if s is not None), stacks
    numbers = {t.number for t in trials}
    assert all(s in numbers for s in stacks if s is not None)
    assert _agreement(migrated_url) == []


@pytest.mark.parametrize("sampler", ["tpe", "grid"])
def test_adaptive_and_grid_studies_batch_every_slot_once(migrated_url: str, sampler: str) -> None:
    space = (
        {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}
        if sampler == "tpe"
        else {"lr": {"type": "float", "values": [0.001, 0.01, 0.03, 0.1, 0.3]}}
    )
    n = 10 if sampler == "tpe" else 5
    spec = SPEC | {"search": SPEC["search"] | {"sampler": sampler, "n_trials": n, "space": space}}
    sid = _create(migrated_url, spec)
    assert _run(migrated_url, sid, 4) == n
    trials = _trials(migrated_url, sid)
    assert [t.slot for t in trials] == list(range(n))
    lrs = [t.params["lr"] for t in trials]
    assert all(math.isfinite(v) for v in lrs)
    if sampler == "grid":
        assert sorted(lrs) == [0.001, 0.01, 0.03, 0.1, 0.3]  # each point once
    assert any(t.stack is not None for t in trials)
    assert _agreement(migrated_url) == []


def test_max_trials_caps_a_batched_claim(migrated_url: str) -> None:
    sid = _create(migrated_url, SPEC)
    worker = Worker(WorkerOptions(db_url=migrated_url, study_id=sid, batch_trials=8, max_trials=3))
    assert worker.run() == 3
    trials = _trials(migrated_url, sid)
    assert len(trials) == 3 and all(t.state in ("COMPLETE", "PRUNED") for t in trials)
    assert {t.stack for t in trials} == {trials[0].number}


def test_a_stack_stopped_by_sigterm_saves_each_trial_and_the_retries_resume(
    migrated_url: str,
) -> None:
    """SIGTERM's path (the worker's handler, run from a thread once the stack has trained
    an epoch): each trial of the stack stops at the epoch's end and hands its slot back
    with its own checkpoint; a worker training one at a time resumes each slot from it
    and ends as the same configuration never stopped (to float32 rounding: the first
    epochs trained in a stack)."""
    import threading
    import time

    from search._worker_options import STOPPED_REASON

    spec = SPEC | {
        "dataset": "digits",
        "search": SPEC["search"]
        | {
            "n_trials": 4,
            "parallelism": 4,
            "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
        },
        "training": SPEC["training"] | {"epochs": 6, "batch_size": 8, "optimizer": "momentum"},
    }
    sid, twin = _create(migrated_url, spec), _create(migrated_url, spec)
    options = WorkerOptions(
        db_url=migrated_url, study_id=sid, batch_trials=4, max_trials=4, heartbeat_interval=0.1
    )
    worker = Worker(options)

    def sigterm_after_an_epoch() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            running = [t for t in _trials(migrated_url, sid) if t.state == "RUNNING"]
            if len(running) == 4 and all(len(t.curves.get("train_loss", [])) > 1 for t in running):
                break
            time.sleep(0.05)
        worker.stop.set(STOPPED_REASON)  # what the SIGTERM handler does
        assert worker.heartbeat is not None
        worker.heartbeat.stop_trial(STOPPED_REASON, retry=True)

    thread = threading.Thread(target=sigterm_after_an_epoch, daemon=True)
    thread.start()
    assert worker.run() == 4
    thread.join(timeout=60)
    stopped = _trials(migrated_url, sid)
    assert all(
        (t.state, t.reason, t.retry_pending) == ("FAIL", STOPPED_REASON, True) for t in stopped
    )
    with store.session_scope(store.make_session_factory(migrated_url, read_only=True)) as s:
        saved = {(c.slot, c.epoch) for c in s.scalars(select(store.CheckpointRow))}
    assert saved == {(t.slot, t.epochs_run) for t in stopped}
    assert all(1 <= t.epochs_run < 6 for t in stopped)
    assert _run(migrated_url, sid, 1) == 4
    assert _run(migrated_url, twin, 1) == 4
    resumed = [t for t in _trials(migrated_url, sid) if t.state != "FAIL"]
    straight = _trials(migrated_url, twin)
    for r, s2, first in zip(resumed, straight, stopped, strict=True):
        assert r.resumed_from == first.epochs_run and r.params == s2.params
        assert (r.state, r.epochs_run) == (s2.state, s2.epochs_run)
        assert _close(r.value, s2.value), (r.slot, r.value, s2.value)
    assert _agreement(migrated_url) == []


def test_a_stack_that_fails_fails_its_own_trials_only(
    migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in training one stack (two layers deep here) fails that stack's trials, once
    and for good, as a bug fails a trial alone; the claim's other stack trains on."""
    import models

    real = models.train_stacked

    def deep_stacks_break(configs: Any, *args: Any, **kwargs: Any) -> Any:
        if len(configs[0].hidden) == 2:
            raise RuntimeError("boom")
        return real(configs, *args, **kwargs)

    monkeypatch.setattr(models, "train_stacked", deep_stacks_break)
    layers = {"type": "layers", "values": [[16], [16, 8]]}
    spec = SPEC | {
        "search": SPEC["search"] | {"space": SPEC["search"]["space"] | {"hidden": layers}}
    }
    sid = _create(migrated_url, spec)
    assert _run(migrated_url, sid, 8) == 8
    trials = _trials(migrated_url, sid)
    deep = [t for t in trials if len(t.params["hidden"]) == 2]
    shallow = [t for t in trials if len(t.params["hidden"]) == 1]
    assert len(deep) >= 2 and len(shallow) >= 2, [t.params["hidden"] for t in trials]
    assert all(
        (t.state, t.reason, t.retry_pending) == ("FAIL", "error: RuntimeError: boom", False)
        for t in deep
    )
    assert all(t.state in ("COMPLETE", "PRUNED") for t in shallow)
    assert _agreement(migrated_url) == []


def test_trials_ending_together_are_recorded_in_one_transaction(
    migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stack's 8 trials complete at its last epoch: their ends are recorded in one
    transaction. When that transaction fails for a bug in one end (trial 3's first try
    here), each end is recorded on its own and none of its stack-mates is lost."""
    import search.stacks as stacks

    real = stacks.end_trial
    calls: list[tuple[Any, int]] = []

    def end_trial(*, session: Any, started: Any, **kwargs: Any) -> bool:
        calls.append((session, started.number))
        if started.number == 3 and len(calls) < 8:
            raise RuntimeError("a bug in one trial's end")
        return bool(real(session=session, started=started, **kwargs))

    monkeypatch.setattr(stacks, "end_trial", end_trial)
    sid = _create(migrated_url, SPEC | {"pruning": {"pruner": "none"}})
    assert _run(migrated_url, sid, 8) == 8
    trials = _trials(migrated_url, sid)
    assert [(t.state, t.epochs_run) for t in trials] == [("COMPLETE", 4)] * 8
    together, alone = calls[:4], calls[4:]
    assert [n for _, n in together] == [0, 1, 2, 3]
    assert len({id(s) for s, _ in together}) == 1
    assert [n for _, n in alone] == list(range(8))
    assert len({id(s) for s, _ in alone}) == 8
    assert _agreement(migrated_url) == []
