"""TrainConfig: one trial's training settings, checked when it is made.

Pure data and checks; ``models.train`` runs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from models._conv_block import ConvBlock
from models._early_stop import EarlyStopping
from models._schedules import Schedule
from search.knobs import BUILT_IN, DEFAULTS, KNOB, TRAINING

MODELS = BUILT_IN
DEFAULT_CONV = (ConvBlock(16), ConvBlock(32))
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")


D = DEFAULTS  # the training knobs' defaults and bounds are search.knobs' table


@dataclass(frozen=True)
class TrainConfig:
    """One trial's training settings. ``hidden`` may be given as a list; it is kept as a tuple.
    Each training knob's default and bounds are its row of ``search.knobs``'s table (a
    value outside them raises ValueError); the rest are the trainer's own."""

    hidden: tuple[int, ...] = tuple(D["hidden"])
    activation: str = D["activation"]
    keep_prob: float = D["keep_prob"]
    weight_init: str = D["weight_init"]
    optimizer: str = D["optimizer"]  # sgd | momentum | adam | rmsprop | adamw
    lr: float = D["lr"]
    momentum: float = D["momentum"]  # only for "momentum" (SGD with momentum); rmsprop keeps 0
    batch_size: int = D["batch_size"]
    # L2, passed as the optimizer's weight_decay (adamw: decoupled)
    weight_decay: float = D["weight_decay"]
    l1: float = D["l1"]  # adds l1 * sum |w| over the Linear weights (not biases) to each batch loss
    # BatchNorm1d after each hidden Linear, before its activation
    batch_norm: bool = D["batch_norm"]
    residual: bool = D["residual"]  # shortcuts around pairs of hidden layers (see models._mlp.MLP)
    # constant | step | exponential | cosine (models._schedules)
    lr_schedule: str = D["lr_schedule"]
    lr_step_epochs: int = D["lr_step_epochs"]  # step: epochs between two cuts of the lr by lr_gamma
    lr_gamma: float = D["lr_gamma"]  # step: factor per cut; exponential: factor per epoch
    # linear warm-up epochs before the schedule starts
    lr_warmup_epochs: int = D["lr_warmup_epochs"]
    # clip the gradient's global L2 norm to this before a step
    clip_norm: float | None = D["clip_norm"]
    # early stopping: epochs without a dev-loss gain; None = off
    patience: int | None = D["patience"]
    min_delta: float = D["min_delta"]  # early stopping: the dev-loss decrease that counts as a gain
    epochs: int = D["epochs"]
    divergence_factor: float = 3.0  # math.inf turns the rule off (non-finite loss still stops)
    seed: int = 0
    device: str = "cpu"  # auto | cpu | cuda | cuda:N
    model: str = "mlp"  # mlp | cnn (image datasets) | synthetic (models._synthetic: no data)
    conv: tuple[ConvBlock, ...] = DEFAULT_CONV  # cnn: the convolution blocks, then ``hidden``
    conv_head: str = D["conv_head"]  # cnn: avg (global average pooling) | flatten
    # image datasets: shift training images by up to this many pixels
    augment_shift: int = D["augment_shift"]
    # image datasets: and rotate them by up to this many degrees
    augment_rotation: float = D["augment_rotation"]
    seconds_per_epoch: float = D["seconds_per_epoch"]  # synthetic: each epoch sleeps this long
    noise: float = D["noise"]  # synthetic: each epoch's losses times exp(noise * N(0, 1))

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "conv", tuple(self.conv))
        for name in TRAINING:
            KNOB[name].check(getattr(self, name))  # layers: below
        _check_model_fields(self)
        _check_training_fields(self)
        _ = self.schedule  # Schedule checks its fields together
        EarlyStopping(self.patience or 1, self.min_delta)

    @property
    def schedule(self) -> Schedule:
        return Schedule(
            self.lr_schedule, self.lr_warmup_epochs, self.lr_step_epochs, self.lr_gamma, self.epochs
        )


def _check_model_fields(c: TrainConfig) -> None:
    hidden = KNOB["hidden"]
    if any(not isinstance(u, int) or not 1 <= u <= (hidden.high or 0) for u in c.hidden):
        raise ValueError(f"hidden must be layer sizes in [1, {hidden.high:g}], got {c.hidden!r}")
    if c.model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {c.model!r}")
    if not c.conv or not all(isinstance(b, ConvBlock) for b in c.conv):
        raise ValueError(f"conv must be one or more ConvBlocks, got {c.conv!r}")


def _check_training_fields(c: TrainConfig) -> None:
    if not c.divergence_factor > 0:
        raise ValueError(f"divergence_factor must be > 0, got {c.divergence_factor!r}")
    if c.seed < 0:
        raise ValueError(f"seed must be >= 0, got {c.seed!r}")
    if not DEVICE_NAME.fullmatch(c.device):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {c.device!r}")
