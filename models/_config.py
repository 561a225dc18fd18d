"""TrainConfig: one trial's training settings, checked when it is made.

Pure data and checks; ``models.train`` runs it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from models._augment import check_augment
from models._cnn import CONV_HEADS, ConvBlock
from models._early_stop import EarlyStopping
from models._mlp import ACTIVATIONS, WEIGHT_INITS
from models._schedules import Schedule

OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop", "adamw")
MODELS = ("mlp", "cnn", "synthetic")
DEFAULT_CONV = (ConvBlock(16), ConvBlock(32))
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass(frozen=True)
class TrainConfig:
    """One trial's training settings. ``hidden`` may be given as a list; it is kept as a tuple."""

    hidden: tuple[int, ...] = (64,)
    activation: str = "relu"
    keep_prob: float = 1.0
    weight_init: str = "he"
    optimizer: str = "adam"  # sgd | momentum | adam | rmsprop | adamw
    lr: float = 1e-3
    momentum: float = 0.9  # only for "momentum" (SGD with momentum); rmsprop keeps 0
    batch_size: int = 64
    weight_decay: float = 0.0  # L2, passed as the optimizer's weight_decay (adamw: decoupled)
    l1: float = 0.0  # adds l1 * sum |w| over the Linear weights (not biases) to each batch loss
    batch_norm: bool = False  # BatchNorm1d after each hidden Linear, before its activation
    residual: bool = False  # shortcuts around pairs of hidden layers (see models._mlp.MLP)
    lr_schedule: str = "constant"  # constant | step | exponential | cosine (models._schedules)
    lr_step_epochs: int = 10  # step: epochs between two cuts of the lr by lr_gamma
    lr_gamma: float = 0.5  # step: factor per cut; exponential: factor per epoch
    lr_warmup_epochs: int = 0  # linear warm-up epochs before the schedule starts
    clip_norm: float | None = None  # clip the gradient's global L2 norm to this before a step
    patience: int | None = None  # early stopping: epochs without a dev-loss gain; None = off
    min_delta: float = 0.0  # early stopping: the dev-loss decrease that counts as a gain
    epochs: int = 20
    divergence_factor: float = 3.0  # math.inf turns the rule off (non-finite loss still stops)
    seed: int = 0
    device: str = "cpu"  # auto | cpu | cuda | cuda:N
    model: str = "mlp"  # mlp | cnn (image datasets) | synthetic (models._synthetic: no data)
    conv: tuple[ConvBlock, ...] = DEFAULT_CONV  # cnn: the convolution blocks, then ``hidden``
    conv_head: str = "avg"  # cnn: avg (global average pooling) | flatten
    augment_shift: int = 0  # image datasets: shift training images by up to this many pixels
    augment_rotation: float = 0.0  # image datasets: and rotate them by up to this many degrees
    seconds_per_epoch: float = 0.0  # synthetic: each epoch sleeps this long
    noise: float = 0.0  # synthetic: each epoch's losses times exp(noise * N(0, 1))

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "conv", tuple(self.conv))
        _check_model_fields(self)
        _check_training_fields(self)
        _check_image_fields(self)
        _check_toolbox_fields(self)

    @property
    def schedule(self) -> Schedule:
        return Schedule(
            self.lr_schedule, self.lr_warmup_epochs, self.lr_step_epochs, self.lr_gamma, self.epochs
        )


def _check_model_fields(c: TrainConfig) -> None:
    if any(not isinstance(u, int) or u < 1 for u in c.hidden):
        raise ValueError(f"hidden must be layer sizes >= 1, got {c.hidden!r}")
    if c.activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {c.activation!r}")
    if not 0.0 < c.keep_prob <= 1.0:
        raise ValueError(f"keep_prob must be in (0, 1], got {c.keep_prob!r}")
    if c.weight_init not in WEIGHT_INITS:
        raise ValueError(f"weight_init must be one of {WEIGHT_INITS}, got {c.weight_init!r}")


def _check_image_fields(c: TrainConfig) -> None:
    if c.model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {c.model!r}")
    if not c.conv or not all(isinstance(b, ConvBlock) for b in c.conv):
        raise ValueError(f"conv must be one or more ConvBlocks, got {c.conv!r}")
    if c.conv_head not in CONV_HEADS:
        raise ValueError(f"conv_head must be one of {CONV_HEADS}, got {c.conv_head!r}")
    check_augment(c.augment_shift, c.augment_rotation)
    if not (c.seconds_per_epoch >= 0 and math.isfinite(c.seconds_per_epoch)):
        raise ValueError(
            f"seconds_per_epoch must be a finite number >= 0, got {c.seconds_per_epoch!r}"
        )
    if not (c.noise >= 0 and math.isfinite(c.noise)):
        raise ValueError(f"noise must be a finite number >= 0, got {c.noise!r}")


def _check_training_fields(c: TrainConfig) -> None:
    if c.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {c.optimizer!r}")
    if not (c.lr > 0 and math.isfinite(c.lr)):
        raise ValueError(f"lr must be a finite number > 0, got {c.lr!r}")
    if not 0.0 <= c.momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {c.momentum!r}")
    if c.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {c.batch_size!r}")
    if not (c.weight_decay >= 0 and math.isfinite(c.weight_decay)):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {c.weight_decay!r}")
    if c.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {c.epochs!r}")
    if not c.divergence_factor > 0:
        raise ValueError(f"divergence_factor must be > 0, got {c.divergence_factor!r}")
    if c.seed < 0:
        raise ValueError(f"seed must be >= 0, got {c.seed!r}")
    if not DEVICE_NAME.fullmatch(c.device):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {c.device!r}")


def _check_toolbox_fields(c: TrainConfig) -> None:
    if not (c.l1 >= 0 and math.isfinite(c.l1)):
        raise ValueError(f"l1 must be a finite number >= 0, got {c.l1!r}")
    if c.clip_norm is not None and not (c.clip_norm > 0 and math.isfinite(c.clip_norm)):
        raise ValueError(f"clip_norm must be a finite number > 0 or None, got {c.clip_norm!r}")
    if c.patience is not None and c.patience < 1:
        raise ValueError(f"patience must be >= 1 or None, got {c.patience!r}")
    _ = c.schedule  # Schedule checks its own fields
    EarlyStopping(c.patience or 1, c.min_delta)  # checks min_delta
