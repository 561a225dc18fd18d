"""A trial's outcome as its end records it (torch-free: the API, which never trains, ends
remote trials and reaps lost ones with it; ``search.trial_runner`` makes them from a run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models import TrainResult


@dataclass(frozen=True)
class TrainedModel:
    """A complete trial's network as a model file's two halves (``models._export``)."""

    config: dict[str, Any]
    weights: bytes


@dataclass(frozen=True)
class TrialCheckpoint:
    """A stopped trial's training state after ``epoch`` (``models.read_checkpoint`` reads
    ``data``), kept for its slot's retry."""

    epoch: int
    data: bytes


@dataclass
class Outcome:
    state: str  # COMPLETE | PRUNED | FAIL
    value: float | None
    reason: str | None
    result: TrainResult | None
    retry: bool = False  # stopped by the worker, not by the trial: its slot runs again
    model: TrainedModel | None = None  # complete trials only
    # A remote trial's row values (metrics, epochs, log): what its client reported.
    reported: dict[str, Any] | None = None
    baseline_error: float | None = None  # the dataset's trivial predictor, on dev
    expected_initial_loss: float | None = None  # what an untrained network should score
    checkpoint: TrialCheckpoint | None = None  # stopped for a retry: where the retry goes on

    def row_values(self, duration_s: float) -> dict[str, Any]:
        r = self.result
        metrics: dict[str, Any] = {}
        curves: dict[str, Any] = {}
        if r is not None:
            metrics = trial_metrics(r, self.baseline_error)
            curves = {
                "train_loss": [finite_or_none(v) for v in r.train_loss],
                "dev_loss": [finite_or_none(v) for v in r.dev_loss],
                "dev_accuracy": list(r.dev_accuracy),
            }
            if any(v is not None for v in r.dev_rmse):
                curves["dev_rmse"] = [finite_or_none(v) for v in r.dev_rmse]
        values: dict[str, Any] = {
            "value": self.value,
            "metrics": metrics,
            "epochs_run": r.epochs_run if r else 0,
            "duration_s": duration_s,
            "reason": self.reason,
        }
        if r is not None:  # else keep the live curves the heartbeat stored
            values |= {
                "curves": curves,
                "initial_loss": finite_or_none(r.initial_loss),
                "expected_initial_loss": self.expected_initial_loss,
                "stopped_early_at": r.stopped_early_at,
                "best_epoch": r.best_epoch,
                "resumed_from": r.resumed_from,
            }
        if self.reported is not None:
            values |= self.reported
        return values


def trial_metrics(r: TrainResult, baseline_error: float | None) -> dict[str, Any]:
    """What hps_trials.metrics records of a run: the last epoch's dev metrics (with early
    stopping on, the kept best epoch's), the whole training set's scores at the end, and
    the errors the bias/variance reading compares (``train_error``, ``dev_error``,
    ``baseline_error``: error rate or RMSE)."""
    metrics: dict[str, Any] = {"initial_loss": finite_or_none(r.initial_loss)}
    final = r.final
    if final is not None:
        metrics |= {
            "train_loss": finite_or_none(final.train_loss),
            "dev_loss": finite_or_none(final.dev_loss),
            "dev_accuracy": final.dev_accuracy,
        }
        if final.dev_rmse is not None:
            metrics |= {
                "dev_rmse": finite_or_none(final.dev_rmse),
                "dev_r2": finite_or_none(final.dev_r2),
            }
    t = r.train_scores
    if t is not None and final is not None:
        dev_error = 1.0 - final.dev_accuracy if final.dev_accuracy is not None else final.dev_rmse
        metrics |= {
            "train_error": finite_or_none(t.error),
            "dev_error": finite_or_none(dev_error),
            "baseline_error": finite_or_none(baseline_error),
        }
        if t.accuracy is not None:
            metrics["train_accuracy"] = t.accuracy
        else:
            metrics["train_rmse"] = finite_or_none(t.rmse)
    return {k: v for k, v in metrics.items() if v is not None}


def finite_or_none(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


__all__ = ["Outcome", "TrainedModel", "TrialCheckpoint", "finite_or_none", "trial_metrics"]
