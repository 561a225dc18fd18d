"""A worker that dies (``os._exit``: no clean-up, no rollback, no last heartbeat) at one
named step of a trial's life. Run in a child process by ``test_crash_recovery.py``.

Steps inside a transaction die before its commit; the others die right after one:

- ``claim~``: the budget slot is claimed, nothing else yet (uncommitted)
- ``ask~``: the Optuna trial exists too (uncommitted)
- ``params~``: the hps row with the parameters exists too (uncommitted)
- ``claimed``: all of the above committed; training not started
- ``epoch``: mid-training, after epoch 1 of the trial
- ``outcome~``: the outcome is written to hps_trials (uncommitted)
- ``told~``: Optuna has the outcome too (uncommitted)
- ``ended``: outcome, Optuna, the released slot and the next trial's claim committed
  together
- ``next~``: the next claim, in the transaction that records the trial's end (uncommitted:
  the end is lost with it, as if the worker had died while training)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

CRASHED = 57  # the exit status of a worker that died at its step
STEPS = ("claim~", "ask~", "params~", "claimed", "epoch", "outcome~", "told~", "ended", "next~")


def _die_after(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fn(*args, **kwargs)
        os._exit(CRASHED)

    return wrapper


def crash_at(db_url: str, study_id: int, step: str) -> None:
    """Serve ``study_id`` until ``step``, then die. Its reaper never fires (an hour's grace):
    the test reaps."""
    from models import train as real_train
    from search import lifecycle, optuna_rows
    from search.worker import Worker, WorkerOptions

    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}")
    dying = {
        "claim~": (lifecycle, "claim_slot"),
        "ask~": (optuna_rows, "create_trial"),
        "params~": (lifecycle, "insert_trial"),
        "claimed": (Worker, "_serve"),
        "outcome~": (lifecycle, "finish_trial"),
        "told~": (optuna_rows, "finish_trial"),
        "ended": (Worker, "_end"),
    }
    if step in dying:
        owner, name = dying[step]
        original = getattr(owner, name)
        if step == "claimed":
            setattr(owner, name, lambda *a, **k: os._exit(CRASHED))
        else:
            setattr(owner, name, _die_after(original))

    def train(config: Any, data: Any, on_epoch: Any) -> Any:
        def on_epoch_then_die(m: Any) -> bool:
            stop = bool(on_epoch(m))
            if step == "epoch" and m.epoch == 1:
                os._exit(CRASHED)
            return stop

        return real_train(config, data, on_epoch_then_die)

    options = WorkerOptions(
        db_url=db_url, study_id=study_id, grace_period=3600, heartbeat_interval=0.5
    )
    worker = Worker(options, train=train)
    if step == "next~":
        claim_slot, claims = lifecycle.claim_slot, []

        def claim_or_die(*args: Any, **kwargs: Any) -> Any:
            claims.append(1)
            if len(claims) == 2:  # the first claim started the trial; this one ends it
                os._exit(CRASHED)
            return claim_slot(*args, **kwargs)

        lifecycle.claim_slot = claim_or_die  # type: ignore[assignment]
    worker.run()
    os._exit(0)  # it never reached its step
