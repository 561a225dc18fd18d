"""One trial: spec + knobs -> TrainConfig -> train() with a verdict per epoch -> an Outcome.

Per-epoch values stay in the worker (``Progress``: the heartbeat carries them into
hps_trials as live curves; the trial's end gives Optuna all of them at once). Only when
the spec's Optuna pruner reads intermediate values is each one reported as it comes
(``OptunaJudge``); the divergence rule alone runs here, in the worker (``LocalJudge``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna

from models import EpochMetrics, TrainConfig, TrainResult, load_dataset
from models import train as train_model
from search.pruners import is_diverged
from search.samplers import derive_seed
from search.spec import ExperimentSpec
from search.store import T_COMPLETE, T_FAIL, T_PRUNED, with_retry

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
Train = Callable[[TrainConfig, Any, Callable[[EpochMetrics], bool]], TrainResult]


@dataclass
class StopSignal:
    """Set by the worker (SIGTERM) or its heartbeat (study cancelled, trial reaped); read
    per epoch. ``retry``: the slot should run again. ``contact_deadline`` (monotonic
    seconds) is pushed on by every successful heartbeat; past it the trial stops, since
    a reaper may already have failed it."""

    event: threading.Event = field(default_factory=threading.Event)
    reason: str = ""
    retry: bool = True
    contact_deadline: float | None = None

    def set(self, reason: str, *, retry: bool = True) -> None:
        if not self.event.is_set():
            self.reason, self.retry = reason, retry
            self.event.set()

    def should_stop(self) -> bool:
        deadline = self.contact_deadline
        if deadline is not None and time.monotonic() > deadline:
            self.set("interrupted (no contact with the database)")
        return self.event.is_set()


class Progress:
    """The running trial's per-epoch values, shared with the heartbeat thread."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.reported: dict[int, float] = {}  # the objective per epoch (step 0 = initial)
        self.in_optuna: set[int] = set()  # steps already reported to Optuna as they came
        self._curves: dict[str, list[Any]] = {"train_loss": [], "dev_loss": [], "dev_accuracy": []}
        self._lock = threading.Lock()

    def add(self, m: EpochMetrics) -> float:
        value = metric_of(m, self.metric)
        with self._lock:
            self.reported[m.epoch] = value
            self._curves["train_loss"].append(_finite_or_none(m.train_loss))
            self._curves["dev_loss"].append(_finite_or_none(m.dev_loss))
            self._curves["dev_accuracy"].append(m.dev_accuracy)
        return value

    def not_in_optuna(self) -> dict[int, float]:
        """The values the trial's end must still give Optuna."""
        return {k: v for k, v in self.reported.items() if k not in self.in_optuna}

    def snapshot(self) -> dict[str, Any]:
        """hps_trials columns for the heartbeat: live curves and the epochs run so far."""
        with self._lock:
            curves = {k: list(v) for k, v in self._curves.items()}
        return {"curves": curves, "epochs_run": max(len(curves["train_loss"]) - 1, 0)}


class Judge(Protocol):
    def __call__(self, epoch: int, value: float) -> str | None:
        """A prune reason for this epoch's value, or None to carry on."""


@dataclass
class LocalJudge:
    """The divergence rule on the worker's own copy of the values: no database."""

    progress: Progress
    factor: float
    minimize: bool

    def __call__(self, epoch: int, value: float) -> str | None:
        diverged = is_diverged(self.progress.reported, epoch, self.factor, self.minimize)
        return "diverged" if diverged else None


@dataclass
class OptunaJudge:
    """Report each value to Optuna and ask its pruner (which wraps the divergence rule)."""

    trial: optuna.Trial
    progress: Progress
    spec: ExperimentSpec

    def __call__(self, epoch: int, value: float) -> str | None:
        with_retry(lambda: self.trial.report(value, epoch))
        self.progress.in_optuna.add(epoch)
        if not with_retry(self.trial.should_prune):
            return None
        p = self.spec.pruning
        minimize = self.spec.direction == "minimize"
        if is_diverged(self.progress.reported, epoch, p.divergence_factor, minimize):
            return "diverged"
        return f"pruned ({p.pruner})"


@dataclass
class Outcome:
    state: str  # COMPLETE | PRUNED | FAIL
    value: float | None
    reason: str | None
    result: TrainResult | None
    retry: bool = False  # stopped by the worker, not by the trial: its slot runs again

    def row_values(self, duration_s: float) -> dict[str, Any]:
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
        values: dict[str, Any] = {
            "value": self.value,
            "metrics": metrics,
            "epochs_run": r.epochs_run if r else 0,
            "duration_s": duration_s,
            "reason": self.reason,
        }
        if r is not None:  # else keep the live curves the heartbeat stored
            values["curves"] = curves
        return values


def _finite_or_none(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def metric_of(m: EpochMetrics, metric: str) -> float:
    value = getattr(m, metric)
    return float("nan") if value is None else float(value)


def build_config(
    spec: ExperimentSpec, knobs: dict[str, Any], *, slot: int, device: str
) -> TrainConfig:
    """The slot's training configuration; its seed depends on (seed, slot) only, so a
    retried slot trains the same way."""
    fixed = spec.training.model_dump()
    chosen = {k: knobs.get(k, fixed[k]) for k in KNOB_FIELDS}
    chosen["hidden"] = tuple(int(u) for u in chosen["hidden"])
    return TrainConfig(
        **chosen,
        divergence_factor=spec.pruning.divergence_factor,
        seed=derive_seed(spec.search.seed, "train", slot),
        device=device,
    )


def run_trial(
    spec: ExperimentSpec,
    knobs: dict[str, Any],
    *,
    slot: int,
    device: str,
    stop: StopSignal,
    progress: Progress,
    judge: Judge,
    train: Train = train_model,
) -> Outcome:
    """Train one configuration, judging the objective per epoch (step 0 = before any
    update) and stopping at the first epoch boundary where ``judge`` or ``stop`` says so."""
    verdict: dict[str, str] = {}

    def on_epoch(m: EpochMetrics) -> bool:
        value = progress.add(m)
        if stop.should_stop():
            verdict["stop"] = stop.reason
            return True
        reason = judge(m.epoch, value)
        if reason is not None:
            verdict["pruned"] = reason
            return True
        return False

    config = build_config(spec, knobs, slot=slot, device=device)
    ds = spec.dataset
    data = load_dataset(ds.name, split=tuple(ds.split), seed=ds.seed)
    result = train(config, data, on_epoch)
    return _outcome(result, verdict, spec.objective.metric, stop)


def _outcome(
    result: TrainResult, verdict: dict[str, str], metric: str, stop: StopSignal
) -> Outcome:
    last = metric_of(result.final, metric) if result.final is not None else float("nan")
    last_or_none = last if math.isfinite(last) else None
    if result.status == "diverged":
        return Outcome(T_PRUNED, last_or_none, "diverged", result)
    if "pruned" in verdict:
        return Outcome(T_PRUNED, last_or_none, verdict["pruned"], result)
    if "stop" in verdict:
        return Outcome(T_FAIL, None, verdict["stop"], result, retry=stop.retry)
    if last_or_none is None:
        return Outcome(T_FAIL, None, f"non-finite {metric} at the last epoch", result)
    return Outcome(T_COMPLETE, last, None, result)


__all__ = [
    "Judge",
    "LocalJudge",
    "OptunaJudge",
    "Outcome",
    "Progress",
    "StopSignal",
    "Train",
    "build_config",
    "metric_of",
    "run_trial",
]
