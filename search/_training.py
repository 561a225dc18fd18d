"""The training block of a spec: a built-in model's fixed training settings (pure
pydantic). Part of the spec contract, kept apart from ``search.spec`` for size; import
``TrainingSpec`` from ``search.spec``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from search._conv import ConvBlockSpec, default_conv
from search._params import MAX_ROTATION, MAX_SHIFT, MAX_UNITS
from search._params import Strict as _Strict

Activation = Literal["relu", "tanh", "sigmoid", "leaky_relu"]
OptimizerName = Literal["sgd", "momentum", "adam", "rmsprop", "adamw"]
LrScheduleName = Literal["constant", "step", "exponential", "cosine"]
WeightInit = Literal["xavier", "he", "normal"]


class TrainingSpec(_Strict):
    """Fixed training settings; any knob named in ``search.space`` overrides its value here.

    Regularisation: ``weight_decay`` is L2 (decoupled for ``adamw``), ``l1`` adds
    ``l1 * sum |w|`` over the layers' weights (not biases) to the loss, ``keep_prob`` is
    inverted dropout. ``batch_norm`` adds BatchNorm1d after each hidden linear layer, before
    its activation (evaluation uses the running statistics gathered in training).

    ``residual``: the first hidden layer maps the inputs to its width, then the following
    hidden layers pair up into blocks with a shortcut around each pair (a last unpaired
    layer is plain). Where a pair's output width differs from its input width the shortcut
    is a learned linear projection, so every ``hidden`` works, fixed or searched: e.g.
    ``[64, 64, 64]`` is one layer and one identity-shortcut block, ``[64, 32, 32]`` one
    layer and a block whose shortcut projects 64 to 32.

    Learning-rate schedule (per epoch): ``lr_warmup_epochs`` epochs of linear warm-up
    (epoch k <= W trains with ``lr * k / (W + 1)``), then, t epochs after the warm-up:
    ``constant`` lr; ``step`` ``lr * lr_gamma ** (t // lr_step_epochs)``;
    ``exponential`` ``lr * lr_gamma ** t``; ``cosine`` ``lr * (1 + cos(pi t / T)) / 2``
    over the T = epochs - W epochs that follow the warm-up.

    ``clip_norm``: the gradient's global L2 norm is clipped to it before each update.

    Early stopping (``patience`` set; None = off): training ends once the dev loss has not
    improved by more than ``min_delta`` for ``patience`` epochs. The trial is complete, not
    pruned: it keeps its best epoch's weights, and its objective and metrics are that
    epoch's; its record says at which epoch it stopped and which epoch it kept.
    """

    epochs: int = Field(20, ge=1, le=1000)
    batch_size: int = Field(64, ge=1, le=65536)
    optimizer: OptimizerName = "adam"
    lr: float = Field(1e-3, gt=0, le=100)
    momentum: float = Field(0.9, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0, le=1)
    l1: float = Field(0.0, ge=0, le=1)
    keep_prob: float = Field(1.0, gt=0, le=1)
    hidden: list[int] = Field(default_factory=lambda: [64], min_length=1, max_length=16)
    activation: Activation = "relu"
    weight_init: WeightInit = "he"
    # model: cnn only (search knobs conv_channels, kernel_size, stride, pool,
    # conv_batch_norm and conv_head override these; see search._conv)
    conv: list[ConvBlockSpec] = Field(default_factory=default_conv, min_length=1, max_length=8)
    conv_head: Literal["avg", "flatten"] = "avg"
    # image datasets only: random shifts (pixels) and rotations (degrees) of training batches
    augment_shift: int = Field(0, ge=0, le=MAX_SHIFT)
    augment_rotation: float = Field(0.0, ge=0, le=MAX_ROTATION)
    # model: synthetic only (models._synthetic): an epoch's sleep, and the losses' noise
    seconds_per_epoch: float = Field(0.0, ge=0, le=3600)
    noise: float = Field(0.0, ge=0, le=1)
    batch_norm: bool = False
    residual: bool = False
    lr_schedule: LrScheduleName = "constant"
    lr_step_epochs: int = Field(10, ge=1, le=1000)
    lr_gamma: float = Field(0.5, gt=0, le=1)
    lr_warmup_epochs: int = Field(0, ge=0, le=1000)
    clip_norm: float | None = Field(None, gt=0, le=1e6)
    patience: int | None = Field(None, ge=1, le=1000)
    min_delta: float = Field(0.0, ge=0, le=1e6)

    @field_validator("batch_norm", "residual", mode="before")
    @classmethod
    def _strict_bool(cls, v: Any) -> Any:
        if not isinstance(v, bool):
            raise ValueError("must be true or false")
        return v

    @field_validator("hidden")
    @classmethod
    def _positive_units(cls, v: list[int]) -> list[int]:
        if any(not 1 <= u <= MAX_UNITS for u in v):
            raise ValueError(f"layer sizes must be between 1 and {MAX_UNITS}")
        return v


__all__ = ["TrainingSpec"]
