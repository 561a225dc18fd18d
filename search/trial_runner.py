"""One trial: spec + knobs -> TrainConfig -> train() with a verdict per epoch -> an Outcome.

Per-epoch values stay in the worker (``Progress``: the heartbeat carries them into
hps_trials as live curves; the trial's end gives Optuna all of them at once). Only when
the spec's Optuna pruner reads the running trial's values from Optuna's tables (successive
halving, Hyperband) is each one reported as it comes (``OptunaJudge``); a median or
percentile pruner is asked on the worker's own values (``CompletedJudge``), and the
divergence rule alone runs here, in the worker (``LocalJudge``).

A trial stopped for a retry (``StopSignal.retry``: SIGTERM) carries its checkpoint in its
Outcome; a retry given that checkpoint resumes after its epoch. The checkpoint's epochs
come to ``on_epoch`` first, so the retry's curves, its judge and Optuna's new trial see
every epoch from 0 (a pruner judges them as it would have).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from models import ConvBlock, EpochMetrics, TrainConfig, TrainResult, train_synthetic
from search.initial_loss import expected_initial_loss
from search.judging import Judge
from search.knobs import TRAINING
from search.outcome import Outcome, TrainedModel, TrialCheckpoint, finite_or_none, trial_metrics
from search.samplers import derive_seed
from search.spec import SYNTHETIC, ExperimentSpec, conv_blocks
from search.store import T_COMPLETE, T_FAIL, T_PRUNED

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # torch, loaded by the first real trial (a synthetic one needs none)
    from models import Checkpoint, Dataset

KNOB_FIELDS = TRAINING  # the training knobs, each a TrainConfig field (search.knobs)
# train(config, data, on_epoch), and resume=Checkpoint when there is one (models.train)
Train = Callable[..., TrainResult]
CURVES = ("train_loss", "dev_loss", "dev_accuracy", "dev_rmse")  # per epoch, in hps_trials


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
        self._curves: dict[str, list[Any]] = {k: [] for k in CURVES}
        self._lock = threading.Lock()

    def add(self, m: EpochMetrics) -> float:
        value = metric_of(m, self.metric)
        with self._lock:
            self.reported[m.epoch] = value
            self._curves["train_loss"].append(finite_or_none(m.train_loss))
            self._curves["dev_loss"].append(finite_or_none(m.dev_loss))
            self._curves["dev_accuracy"].append(m.dev_accuracy)
            self._curves["dev_rmse"].append(finite_or_none(m.dev_rmse))
        return value

    def not_in_optuna(self) -> dict[int, float]:
        """The values the trial's end must still give Optuna."""
        return {k: v for k, v in self.reported.items() if k not in self.in_optuna}

    def snapshot(self) -> dict[str, Any]:
        """hps_trials columns for the heartbeat: live curves and the epochs run so far."""
        with self._lock:
            curves = {k: list(v) for k, v in self._curves.items()}
        if all(v is None for v in curves["dev_rmse"]):
            del curves["dev_rmse"]  # classification: as the trial's end records it
        return {"curves": curves, "epochs_run": max(len(curves["train_loss"]) - 1, 0)}


def metric_of(m: EpochMetrics, metric: str) -> float:
    value = getattr(m, metric)
    return float("nan") if value is None else float(value)


def build_config(
    spec: ExperimentSpec, knobs: dict[str, Any], *, slot: int, device: str
) -> TrainConfig:
    """The slot's training configuration; its seed depends on (seed, slot) only, so a
    retried slot trains the same way."""
    fixed = spec.train.model_dump()
    chosen = {k: knobs.get(k, fixed[k]) for k in KNOB_FIELDS}
    chosen["hidden"] = tuple(int(u) for u in chosen["hidden"])
    blocks = tuple(ConvBlock(**b) for b in conv_blocks(spec.train.conv, knobs))
    return TrainConfig(
        **chosen,
        model=spec.model,
        conv=blocks,
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
    train: Train | None = None,
    data: Dataset | None = None,
    resume: bytes | None = None,
) -> Outcome:
    """Train one configuration on ``data`` (the spec's built-in dataset when None),
    judging the objective per epoch (step 0 = before any update) and stopping at the
    first epoch boundary where ``judge`` or ``stop`` says so. A complete trial carries
    its trained model (``train``: ``models.train`` when None); one stopped for a retry, its
    checkpoint. ``resume``: the slot's checkpoint, resumed from when it is of this
    configuration. The synthetic model reads no data, ignores ``train`` and ``resume`` and
    never imports torch: its epochs are
    ``models.train_synthetic``'s analytic losses."""
    verdict: dict[str, str] = {}
    on_epoch = epoch_callback(progress, stop, judge, verdict)
    config = build_config(spec, knobs, slot=slot, device=device)
    if spec.model == SYNTHETIC:
        result = train_synthetic(config, None, on_epoch)
        return _outcome(result, verdict, spec.objective.metric, stop)
    from models import load_dataset
    from models import train as train_model

    if data is None:
        ds = spec.data
        data = load_dataset(ds.name or "", split=tuple(ds.split), seed=ds.seed)
    checkpoint = _usable(resume, config, slot)
    train = train or train_model
    if checkpoint is None:
        result = train(config, data, on_epoch)
    else:
        result = train(config, data, on_epoch, resume=checkpoint)
    return trained_outcome(result, verdict, spec, stop, config, data)


def epoch_callback(
    progress: Progress, stop: StopSignal, judge: Judge, verdict: dict[str, str]
) -> Callable[[EpochMetrics], bool]:
    """A trial's ``on_epoch``: keep the epoch's values, then stop it (True) when ``stop``
    is set or ``judge`` prunes; why goes into ``verdict`` ("stop" or "pruned")."""

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

    return on_epoch


def trained_outcome(
    result: TrainResult,
    verdict: dict[str, str],
    spec: ExperimentSpec,
    stop: StopSignal,
    config: TrainConfig,
    data: Dataset,
) -> Outcome:
    """How a trained trial ended (``verdict``: what its ``epoch_callback`` decided), with
    what its row shows of the data, and a complete trial's model."""
    from models import CNN, MLP, model_config, weights_bytes

    outcome = _outcome(result, verdict, spec.objective.metric, stop)
    outcome.baseline_error = data.baseline_error
    outcome.expected_initial_loss = expected_initial_loss(data.task, data.n_classes)
    if outcome.state == T_COMPLETE and isinstance(result.model, MLP | CNN):
        metrics = trial_metrics(result, data.baseline_error)
        outcome.model = TrainedModel(
            model_config(result.model, config.hidden, data, metrics),
            weights_bytes(result.model),
        )
    return outcome


def _usable(resume: bytes | None, config: TrainConfig, slot: int) -> Checkpoint | None:
    """The slot's checkpoint if it resumes ``config``'s run: one an adaptive sampler's
    retry (new parameters) or another kind of device cannot use is set aside."""
    if resume is None:
        return None
    from models import config_key, read_checkpoint, resolve_device

    try:
        checkpoint = read_checkpoint(resume)
    except ValueError as exc:
        log.warning("slot %s: its checkpoint is unreadable (%s); starting over", slot, exc)
        return None
    if checkpoint.config_key != config_key(config, resolve_device(config.device)):
        log.warning("slot %s: its checkpoint is of another configuration; starting over", slot)
        return None
    return checkpoint


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
        outcome = Outcome(T_FAIL, None, verdict["stop"], result, retry=stop.retry)
        if stop.retry and result.checkpoint is not None:
            outcome.checkpoint = TrialCheckpoint(result.epochs_run, result.checkpoint())
        return outcome
    if last_or_none is None:
        return Outcome(T_FAIL, None, f"non-finite {metric} at the last epoch", result)
    return Outcome(T_COMPLETE, last, None, result)


__all__ = [
    "CURVES",
    "TrainedModel",
    "trial_metrics",
    "Outcome",
    "Progress",
    "StopSignal",
    "Train",
    "build_config",
    "epoch_callback",
    "metric_of",
    "run_trial",
    "trained_outcome",
]
