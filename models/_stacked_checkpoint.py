"""The checkpoint of a trial stopped inside a stack, as its run alone would have saved it.

A stacked trial stopped at an epoch boundary (SIGTERM: the worker hands its slot back)
leaves the checkpoint ``models.train`` would leave for the same run alone
(``models._checkpoint``): its own network (its slice of the stack, cut to its widths), a
``torch.optim`` optimizer of its kind holding its slice of the stacked optimizer's state
(momentum buffers, Adam's moments, RMSprop's averages, the step count), its lr schedule
stepped to the epoch, its early stopping and its own generators. The slot's retry, trained
alone, resumes from it as from any checkpoint.

The trial's tensors are copied when it leaves the stack (the stack is cut down right
after); the bytes are made only if asked for (a pruned trial never is).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from models._checkpoint import RunState
from models._config import TrainConfig
from models._early_stop import EarlyStopping
from models._schedules import build_scheduler
from models._stacked_cnn import StackedCNN
from models._stacked_mlp import StackedMLP
from models._stacked_optim import StackedOptimizer
from models._streams import TrialStreams


@dataclass(frozen=True)
class Stopped:
    """Where trial's run stopped: after ``epoch``, with these metrics (``EpochMetrics``,
    epoch 0 first) and the lr of each epoch trained."""

    epoch: int
    config_key: str
    history: list[Any]
    lr: list[float]


def stacked_checkpoint(
    model: StackedMLP | StackedCNN,
    optimizer: StackedOptimizer,
    k: int,
    net: nn.Module,
    config: TrainConfig,
    *,
    streams: TrialStreams,
    stopper: EarlyStopping | None,
    stopped: Stopped,
) -> Callable[[], bytes]:
    """Trial k's checkpoint maker (``net`` holds its weights now)."""
    shapes = model.shapes[k]
    names = [name for name, _ in model.named_parameters()]
    own: dict[str, dict[str, torch.Tensor]] = {}
    for name, state in zip(names, optimizer.state, strict=False):
        cut = tuple(slice(0, n) for n in shapes[name])
        own[name] = {key: t[k][cut].clone() for key, t in state.items()}
    run = functools.partial(_run_state, net, config, own, optimizer.steps, streams, stopper)
    return lambda: run(len(stopped.lr)).save(
        epoch=stopped.epoch, config_key=stopped.config_key, history=stopped.history, lr=stopped.lr
    )


def _run_state(
    net: nn.Module,
    config: TrainConfig,
    own: dict[str, dict[str, torch.Tensor]],
    steps: int,
    streams: TrialStreams,
    stopper: EarlyStopping | None,
    epochs: int,
) -> RunState:
    """The run state of the trial alone after ``epochs`` epochs of ``steps`` optimizer steps."""
    from models.train import _build_optimizer

    optimizer = _build_optimizer(config, net)
    scheduler = build_scheduler(optimizer, config.schedule)
    with warnings.catch_warnings():  # stepped without optimizer steps: only its count matters
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(epochs):
            scheduler.step()
    scalar = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    for name, p in net.named_parameters():
        state = dict(own.get(name, {}))
        if state and config.optimizer in ("adam", "adamw", "rmsprop"):
            state["step"] = torch.tensor(float(steps), dtype=scalar)
        if state:
            optimizer.state[p] = state
    return RunState(net, optimizer, scheduler, stopper, streams)


__all__ = ["Stopped", "stacked_checkpoint"]
