"""A run stopped at an epoch boundary, as bytes a later run resumes from, ending exactly as
one never stopped would (on the CPU, bitwise: the same numbers in the same order).

What a run carries from one epoch to the next (``RunState``) and a checkpoint keeps: the
network's weights and buffers (batch-norm statistics), the optimizer's state (momentum,
Adam's moments and step count), the lr schedule's step, early stopping's best epoch and its
weights, and the trial's data and dropout generators (``models._streams``: shuffle order,
augmentation, dropout masks); with them every epoch's metrics so far and the lr each epoch
trained with. Nothing else is random: a trial never draws from torch's, numpy's or Python's
global generators, so their states are not kept.

The bytes are ``torch.save``'s and are read back with ``weights_only=True``: tensors,
numbers, strings, lists and dicts only, never code. A checkpoint names its configuration
(``config_key``); a run refuses one of another.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from models._config import TrainConfig
from models._early_stop import EarlyStopping
from models._streams import TrialStreams

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint as read back: ``epoch`` is the last completed one (a resumed run goes
    on at ``epoch + 1``); ``state`` is what ``RunState.save`` wrote."""

    epoch: int
    config_key: str
    state: dict[str, Any]

    @property
    def history(self) -> list[dict[str, Any]]:
        """Each epoch's metrics (``EpochMetrics`` fields), epoch 0 first."""
        return list(self.state["history"])

    @property
    def lr(self) -> list[float]:
        """The lr each epoch 1..``epoch`` trained with."""
        return [float(v) for v in self.state["lr"]]


@dataclass
class RunState:
    """What one epoch of a run leaves for the next."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    stopper: EarlyStopping | None
    streams: TrialStreams

    def save(self, *, epoch: int, config_key: str, history: list[Any], lr: list[float]) -> bytes:
        """The checkpoint of this run after ``epoch``; ``history``: every epoch's
        ``EpochMetrics`` so far (dataclasses), ``lr``: the lr of each epoch."""
        state = {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch,
            "config_key": config_key,
            "history": [dataclasses.asdict(m) for m in history],
            "lr": list(lr),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "early_stopping": None if self.stopper is None else self.stopper.state_dict(),
            "data_rng": self.streams.data.get_state(),
            "dropout_rng": self.streams.dropout.get_state(),
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    def load(self, checkpoint: Checkpoint) -> None:
        """Put ``checkpoint``'s state back (the optimizer and the schedule already built,
        as a fresh run builds them; early stopping's ``best_metrics`` is the caller's)."""
        s = checkpoint.state
        self.model.load_state_dict(s["model"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.scheduler.load_state_dict(s["scheduler"])
        if self.stopper is not None:
            self.stopper.load_state_dict(s["early_stopping"])
        self.streams.data.set_state(s["data_rng"])
        self.streams.dropout.set_state(s["dropout_rng"])


def config_key(config: TrainConfig, device: torch.device) -> str:
    """Names a configuration on a kind of device: a checkpoint resumes only the run it
    came from (a CUDA generator's state means nothing to a CPU one)."""
    fields = dataclasses.asdict(config) | {"device": device.type}
    return hashlib.sha256(repr(sorted(fields.items())).encode()).hexdigest()


def read_checkpoint(data: bytes) -> Checkpoint:
    """The checkpoint in ``data``; ValueError when it is not one this version wrote."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"not a checkpoint: {type(exc).__name__}: {exc}"[:300]) from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not a checkpoint of format {CHECKPOINT_FORMAT}")
    return Checkpoint(int(state["epoch"]), str(state["config_key"]), state)


__all__ = ["CHECKPOINT_FORMAT", "Checkpoint", "RunState", "config_key", "read_checkpoint"]
