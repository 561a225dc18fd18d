"""The ``synthetic`` model: no data, no network; each epoch sleeps ``seconds_per_epoch`` and
reports losses from a deterministic analytic function of the configuration.

It gives searches, samplers and pruners something meaningful to optimise at any speed (the
benchmarks use it with 0 seconds per epoch to measure bookkeeping alone), and smoke-tests a
deployment without loading a dataset.

The dev loss of epoch e (e = 0 is the initial loss, before any update) is::

    dev(e) = A + (L0 - A) * exp(-s * e)          L0 = 2.3 (an untrained network's loss)

a curve that falls from L0 towards its asymptote ``A`` at speed ``s``:

- ``A = 0.05 + gap``: ``gap`` is a smooth bowl, 0 at the optimum, made of one term per
  knob that matters: log10(lr) (best 3e-3, the largest term), keep_prob (best 0.8),
  log2(batch_size) (best 64), log2 of the hidden units (best 64 in all) and the depth
  (best 1 layer), weight_decay (best 0, a gentle rise in log10(1 + wd / 1e-4)), the
  optimizer (adam and adamw best, sgd worst) and momentum (optimizer ``momentum`` only,
  best 0.9). Away from lr and keep_prob the spec's defaults are the optimum. Every other
  knob is accepted and has no effect, like hyperparameters that do not matter;
- ``s = 0.4 * min(sqrt(lr / 3e-3), 3)``: a small learning rate learns slowly;
- a learning rate above 0.3 diverges: the loss grows by ``1.5 + log10(lr / 0.3)`` per epoch
  until the divergence rule stops it (above ``divergence_factor`` times L0).

The train loss is the dev loss times ``1.25 - keep_prob / 2`` from epoch 1 (dropout closes
the train-dev gap). ``noise`` > 0 multiplies each epoch's losses by ``exp(noise * N(0, 1))``,
drawn from ``config.seed``: a retried configuration repeats its curve exactly.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

from models._config import TrainConfig
from models._results import EpochMetrics, TrainResult

INITIAL_LOSS = 2.3
FLOOR = 0.05  # the asymptote at the optimum: no configuration scores lower
BEST_LR = 3e-3
DIVERGING_LR = 0.3
# The optimum: lr 3e-3, keep_prob 0.8, and the spec's defaults for the rest.
BEST = {"keep_prob": 0.8, "batch_size": 64, "units": 64, "depth": 1}
OPTIMIZER_GAP = {"adam": 0.0, "adamw": 0.0, "rmsprop": 0.05, "momentum": 0.1, "sgd": 0.3}
OnEpoch = Callable[[EpochMetrics], bool | None]


def synthetic_gap(c: TrainConfig) -> float:
    """How far ``c`` is from the optimum: 0 there, growing smoothly away from it."""
    u = math.log10(min(c.lr, DIVERGING_LR) / BEST_LR)
    gap = 0.25 * u**2
    gap += 2.0 * (c.keep_prob - BEST["keep_prob"]) ** 2
    gap += 0.02 * math.log2(c.batch_size / BEST["batch_size"]) ** 2
    gap += 0.02 * math.log2(sum(c.hidden) / BEST["units"]) ** 2
    gap += 0.05 * (len(c.hidden) - BEST["depth"]) ** 2
    gap += 0.01 * math.log10(1.0 + c.weight_decay / 1e-4) ** 2
    gap += OPTIMIZER_GAP[c.optimizer]
    if c.optimizer == "momentum":
        gap += 0.5 * (c.momentum - 0.9) ** 2
    return gap


def synthetic_dev_loss(c: TrainConfig, epoch: int) -> float:
    """The noiseless dev loss of ``c`` after ``epoch`` epochs (0 = initial)."""
    if c.lr > DIVERGING_LR:
        growth = epoch * math.log(1.5 + math.log10(c.lr / DIVERGING_LR))
        return INITIAL_LOSS * math.exp(growth) if growth < 700 else math.inf
    asymptote = FLOOR + synthetic_gap(c)
    speed = 0.4 * min(math.sqrt(c.lr / BEST_LR), 3.0)
    return asymptote + (INITIAL_LOSS - asymptote) * math.exp(-speed * epoch)


def train_synthetic(
    config: TrainConfig, data: Any = None, on_epoch: OnEpoch | None = None
) -> TrainResult:
    """Run ``config`` on the synthetic model: per epoch, sleep ``config.seconds_per_epoch``
    and report the analytic losses. Same contract as ``models.train`` (``data`` is ignored):
    ``on_epoch`` gets epoch 0 and each completed epoch and may stop the run; a train loss
    above ``divergence_factor`` times the initial loss ends it as "diverged" (that epoch is
    not recorded, as in ``train``)."""
    start = time.perf_counter()
    rng = random.Random(config.seed)
    result = TrainResult("completed", None, 0, INITIAL_LOSS, [], [], [], 0.0, None)
    limit = config.divergence_factor * INITIAL_LOSS
    status = None
    for epoch in range(config.epochs + 1):
        if epoch > 0:
            time.sleep(config.seconds_per_epoch)
        dev = synthetic_dev_loss(config, epoch)
        train = dev if epoch == 0 else dev * (1.25 - config.keep_prob / 2)
        if config.noise > 0 and epoch > 0:
            factor = math.exp(config.noise * rng.gauss(0.0, 1.0))
            dev, train = dev * factor, train * factor
        if epoch > 0 and (not math.isfinite(train) or train > limit):
            status = "diverged"
            break
        result.epochs_run = epoch
        metrics = EpochMetrics(epoch, train, dev, None)
        result.train_loss.append(train)
        result.dev_loss.append(dev)
        result.dev_accuracy.append(None)
        result.dev_rmse.append(None)
        result.final = metrics
        if on_epoch is not None and on_epoch(metrics):
            status = "stopped"
            break
    result.status, result.reason = status or "completed", status
    result.duration_s = time.perf_counter() - start
    return result


__all__ = [
    "BEST",
    "BEST_LR",
    "FLOOR",
    "INITIAL_LOSS",
    "synthetic_dev_loss",
    "synthetic_gap",
    "train_synthetic",
]
