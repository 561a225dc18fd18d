"""One trial: spec + Optuna trial -> TrainConfig -> train() with per-epoch report and
should_prune -> an Outcome to tell. The only place that calls ``trial.report``."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import optuna

from models import EpochMetrics, TrainConfig, TrainResult, load_dataset, train
from search.pruners import is_diverged
from search.samplers import derive_seed
from search.spec import ExperimentSpec
from search.store import T_COMPLETE, T_FAIL, T_PRUNED

KNOB_FIELDS = (
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "keep_prob",
    "hidden",
    "activation",
    "weight_init",
)


@dataclass
class StopSignal:
    """Set by the worker (SIGTERM) or its heartbeat (study cancelled); read per epoch."""

    event: threading.Event = field(default_factory=threading.Event)
    reason: str = ""

    def set(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()


@dataclass
class Outcome:
    state: str  # COMPLETE | PRUNED | FAIL
    value: float | None
    reason: str | None
    result: TrainResult | None
    interrupted: bool = False  # stopped by the worker: budget goes back for a retry

    def row_values(self, params: dict[str, Any], duration_s: float) -> dict[str, Any]:
        r = self.result
        metrics: dict[str, Any] = {}
        curves: dict[str, Any] = {}
        if r is not None:
            metrics = {"initial_loss": _finite_or_none(r.initial_loss)}
            if r.final is not None:
                metrics |= {
                    "train_loss": _finite_or_none(r.final.train_loss),
                    "dev_loss": _finite_or_none(r.final.dev_loss),
                    "dev_accuracy": r.final.dev_accuracy,
                }
            curves = {
                "train_loss": [_finite_or_none(v) for v in r.train_loss],
                "dev_loss": [_finite_or_none(v) for v in r.dev_loss],
                "dev_accuracy": list(r.dev_accuracy),
            }
        return {
            "value": self.value,
            "params": params,
            "metrics": metrics,
            "curves": curves,
            "epochs_run": r.epochs_run if r else 0,
            "duration_s": duration_s,
            "reason": self.reason,
        }


def _finite_or_none(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def metric_of(m: EpochMetrics, metric: str) -> float:
    value = getattr(m, metric)
    return float("nan") if value is None else float(value)


def build_config(
    spec: ExperimentSpec, knobs: dict[str, Any], *, number: int, device: str
) -> TrainConfig:
    fixed = spec.training.model_dump()
    chosen = {k: knobs.get(k, fixed[k]) for k in KNOB_FIELDS}
    chosen["hidden"] = tuple(int(u) for u in chosen["hidden"])
    return TrainConfig(
        **chosen,
        divergence_factor=spec.pruning.divergence_factor,
        seed=derive_seed(spec.search.seed, "train", number),
        device=device,
    )


def run_trial(
    spec: ExperimentSpec,
    trial: optuna.Trial,
    knobs: dict[str, Any],
    *,
    device: str,
    stop: StopSignal,
) -> Outcome:
    """Train one configuration, reporting the objective per epoch (step 0 = before any
    update) and stopping at the first epoch boundary where the pruner or ``stop`` says so."""
    metric = spec.objective.metric
    minimize = spec.direction == "minimize"
    factor = spec.pruning.divergence_factor
    verdict: dict[str, str] = {}
    reported: dict[int, float] = {}

    def on_epoch(m: EpochMetrics) -> bool:
        reported[m.epoch] = metric_of(m, metric)
        trial.report(reported[m.epoch], m.epoch)
        if stop.event.is_set():
            verdict["stop"] = stop.reason
            return True
        if trial.should_prune():
            diverged = is_diverged(reported, m.epoch, factor, minimize)
            verdict["pruned"] = "diverged" if diverged else f"pruned ({spec.pruning.pruner})"
            return True
        return False

    config = build_config(spec, knobs, number=trial.number, device=device)
    ds = spec.dataset
    data = load_dataset(ds.name, split=tuple(ds.split), seed=ds.seed)
    result = train(config, data, on_epoch)
    return _outcome(result, verdict, metric)


def _outcome(result: TrainResult, verdict: dict[str, str], metric: str) -> Outcome:
    last = metric_of(result.final, metric) if result.final is not None else float("nan")
    last_or_none = last if math.isfinite(last) else None
    if result.status == "diverged":
        return Outcome(T_PRUNED, last_or_none, "diverged", result)
    if "pruned" in verdict:
        return Outcome(T_PRUNED, last_or_none, verdict["pruned"], result)
    if "stop" in verdict:
        reason = verdict["stop"]
        return Outcome(T_FAIL, None, reason, result, interrupted=reason != "cancelled")
    if last_or_none is None:
        return Outcome(T_FAIL, None, f"non-finite {metric} at the last epoch", result)
    return Outcome(T_COMPLETE, last, None, result)


__all__ = [
    "Outcome",
    "StopSignal",
    "build_config",
    "metric_of",
    "run_trial",
]
