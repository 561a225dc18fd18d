"""What the REST trial API (``search.remote``) makes of a remote attempt as its call found
it (``store.Attempt``, read under the attempt's lock): the lifecycle's handle on it, the
outcomes it can end with, the row values of its end, why a call finds it gone, and its end
recorded on both sides (``search.lifecycle.end_trial``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from search import optuna_rows
from search._remote_answers import LeaseLost
from search.lifecycle import StartedTrial, end_trial
from search.outcome import Outcome, finite_or_none
from search.spec import ExperimentSpec
from search.store import (
    T_COMPLETE,
    T_FAIL,
    T_PRUNED,
    T_RUNNING,
    Attempt,
    add_metric_names,
    last_epoch,
    reported_series,
)

CANCELLED_REASON = "cancelled"


def started_of(a: Attempt) -> StartedTrial:
    """The lifecycle's handle on a claimed attempt."""
    assert a.optuna_trial_id is not None and a.slot is not None
    return StartedTrial(a.study_id, a.id, a.slot, a.number, a.optuna_trial_id, a.params)


def reported_values(a: Attempt, final: dict[str, float]) -> dict[str, Any]:
    """The row values of a remote trial's end: its last reported metrics updated by
    ``final``, and its epochs."""
    metrics = a.metrics | {k: finite_or_none(v) for k, v in final.items()}
    return {"metrics": metrics, "epochs_run": last_epoch(a.curves)}


def pruned_outcome(spec: ExperimentSpec, a: Attempt, reason: str) -> Outcome:
    """Pruned for ``reason``, with its last reported objective value."""
    objective = reported_series(a.curves, spec.objective.metric)
    last = objective[max(objective)] if objective else None
    return Outcome(T_PRUNED, last, reason, None, reported=reported_values(a, {}))


def cancelled_outcome(a: Attempt) -> Outcome:
    """Ended by its study's cancellation (never retried)."""
    return Outcome(T_FAIL, None, CANCELLED_REASON, None, reported=reported_values(a, {}))


def gone(a: Attempt) -> LeaseLost:
    """The refusal of a call that found the attempt no longer running."""
    if a.state == T_RUNNING:  # its study was cancelled: the call ended it
        return LeaseLost(f"study {a.study_id} was cancelled: trial {a.number} ended")
    why = {T_COMPLETE: "completed", T_PRUNED: "pruned"}.get(a.state)
    if why is None:
        why = f"failed ({a.reason})" if a.reason else "failed"
    return LeaseLost(f"trial {a.number} is no longer running: it {why}; nothing changed")


def record_end(session: Session, spec: ExperimentSpec, a: Attempt, outcome: Outcome) -> None:
    """End the locked RUNNING attempt with ``outcome`` (``end_trial``): the objective's
    values Optuna lacks reach its table, and the study learns the metric names reported."""
    objective = reported_series(a.curves, spec.objective.metric)
    if spec.pruning.pruner != "none":
        assert a.optuna_trial_id is not None
        known = optuna_rows.intermediate_steps(session=session, trial_id=a.optuna_trial_id)
        objective = {e: v for e, v in objective.items() if e not in known}
    end_trial(
        session=session,
        started=started_of(a),
        outcome=outcome,
        new_intermediate_values=objective,
        duration_s=max((a.now - a.started_at).total_seconds(), 0.0),
        worker_id=None,
    )
    names = [k for k in a.curves if k != "epoch"]
    names += list((outcome.reported or {}).get("metrics") or {})
    add_metric_names(session=session, study_id=a.study_id, names=names)


__all__ = [
    "CANCELLED_REASON",
    "cancelled_outcome",
    "gone",
    "pruned_outcome",
    "record_end",
    "reported_values",
    "started_of",
]
