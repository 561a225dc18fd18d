"""Studies filled with made-up trials, written through the store's own functions (claim,
attach, finish), for tests of reads, pages and exports that need no training."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from search import store
from search.spec import ExperimentSpec

SPEC: dict[str, Any] = {
    "name": "made-up",
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": 50,
        "parallelism": 50,
        "space": {
            "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
            "keep_prob": {"type": "float", "low": 0.5, "high": 1.0},
            "hidden": {"type": "layers", "depth": [1, 2], "units": [16, 256]},
        },
    },
    "training": {"epochs": 3},
}


@dataclass
class Made:
    """One made-up trial: its outcome and what the worker would have recorded."""

    state: str
    value: float | None
    params: dict[str, Any]
    reason: str | None = None
    epochs: int = 3
    metrics: dict[str, Any] = field(default_factory=dict)


def curves_for(t: Made) -> dict[str, list[float | None]]:
    base = t.value if t.value is not None else 2.0
    dev = [2.3 - (2.3 - base) * e / max(t.epochs, 1) for e in range(t.epochs + 1)]
    return {"train_loss": [v * 0.9 for v in dev], "dev_loss": dev, "dev_accuracy": [0.5] * len(dev)}


def make_study(
    factory: Any, trials: list[Made], *, spec: dict[str, Any] | None = None, running: int = 0
) -> int:
    """A study whose trials 0..n-1 end in the given order, then ``running`` more that are
    still running; returns the study id."""
    data = ExperimentSpec.model_validate(spec or SPEC).model_dump(mode="json")
    with store.session_scope(factory) as s:
        row = store.insert_study(
            session=s,
            spec=data,
            optuna_study_name=f"made-{uuid.uuid4().hex}",
            n_trials=data["search"]["n_trials"],
        )
        study_id = row.id
    for number, t in enumerate([*trials, *([None] * running)]):
        with store.session_scope(factory) as s:
            claim = store.claim_slot(session=s, study_id=study_id)
            assert claim is not None, "raise n_trials/parallelism in the spec"
            params = t.params if t is not None else {"lr": 0.01, "keep_prob": 0.9, "hidden": [32]}
            row_id = store.insert_trial(
                session=s,
                claim=claim,
                worker_id=None,
                number=number,
                optuna_trial_id=None,
                params=params,
            )
        if t is None:
            continue
        values = {
            "value": t.value,
            "params": t.params,
            "metrics": {"initial_loss": 2.3, "dev_loss": t.value, **t.metrics},
            "curves": curves_for(t),
            "epochs_run": t.epochs,
            "duration_s": 0.5 + number / 100,
            "reason": t.reason,
        }
        end_trial(factory, row_id, t.state, values)
    return study_id


def end_trial(factory: Any, row_id: int, state: str, values: dict[str, Any]) -> None:
    """Record a running made-up trial's end, as a worker would."""
    with store.session_scope(factory) as s:
        store.lock_study(session=s, study_id=s.get(store.TrialRow, row_id).study_id)
        trial = store.lock_running_trial(session=s, trial_row_id=row_id)
        assert trial is not None, f"trial row {row_id} is not running"
        store.finish_trial(session=s, trial=trial, state=state, values=values, retry=False)


def params(lr: float, keep_prob: float = 0.9, hidden: list[int] | None = None) -> dict[str, Any]:
    return {"lr": lr, "keep_prob": keep_prob, "hidden": hidden or [32]}


# A study some of whose trials trained together (worker --batch-trials): trial 0 alone,
# 1-3 in stack 1 (2 was pruned: it left early), 4 and 5 (still running) in stack 4.
STACKED_TRIALS = [
    Made("COMPLETE", 0.4, params(0.01)),
    Made("COMPLETE", 0.2, params(0.002, 0.6, [128, 32])),
    Made("PRUNED", 5.0, params(0.8), reason="diverged", epochs=1),
    Made("COMPLETE", 0.3, params(0.0005, 0.7, [16])),
    Made("COMPLETE", 0.5, params(0.05)),
]
STACKS = {0: None, 1: 1, 2: 1, 3: 1, 4: 4, 5: 4}


def make_stacked_study(factory: Any) -> tuple[int, int]:
    """``STACKED_TRIALS`` with ``STACKS`` written on them, and a busy worker training
    trials 4 and 5 together; (study id, worker id)."""
    from sqlalchemy import update

    stacked = make_study(factory, STACKED_TRIALS, running=1)
    with store.session_scope(factory) as s:
        for number, stack in STACKS.items():
            s.execute(
                update(store.TrialRow)
                .where(store.TrialRow.study_id == stacked, store.TrialRow.number == number)
                .values(stack=stack)
            )
        busy = store.register_worker(session=s, name="gpu0", host="box", pid=7, device="cuda")
        store.set_worker_state(
            session=s,
            worker_id=busy,
            status=store.W_BUSY,
            study_id=stacked,
            trial_number=4,
            stack=[4, 5],
        )
    return stacked, busy


__all__ = [
    "SPEC",
    "STACKED_TRIALS",
    "STACKS",
    "Made",
    "curves_for",
    "end_trial",
    "make_stacked_study",
    "make_study",
    "params",
]
