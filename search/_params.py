"""Search-space parameter specs and the tunable knobs they may set (pure pydantic).

Part of the spec contract, kept apart from ``search.spec`` for size; import these names
from ``search.spec``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ACTIVATIONS = ("relu", "tanh", "sigmoid", "leaky_relu")
OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop", "adamw")
WEIGHT_INITS = ("xavier", "he", "normal")
LR_SCHEDULES = ("constant", "step", "exponential", "cosine")
MAX_UNITS = 65536
POOLS = ("max", "avg", "none")  # after a convolution block: 2x2 pooling, stride 2, or none
CONV_HEADS = ("avg", "flatten")  # global average pooling of the last map, or a flatten
MAX_CHANNELS = 1024
MAX_KERNEL, MAX_STRIDE = 15, 8
MAX_SHIFT, MAX_ROTATION = 4, 45.0  # augmentation: pixels, degrees


class Strict(BaseModel):
    """Base of every spec model: unknown fields and NaN/inf are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class FloatParam(Strict):
    """A float knob: a range (``log`` samples it on a log scale) or explicit ``values``.

    For grid search a range needs ``points`` (log-spaced when ``log``)."""

    type: Literal["float"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    points: int | None = Field(None, ge=2, le=1000)
    values: list[float] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        _check_range(self.low, self.high, self.log, self.values)
        return self


class IntParam(Strict):
    """An int knob: a range (``log`` for multiplicative ranges) or explicit ``values``."""

    type: Literal["int"]
    low: int | None = None
    high: int | None = None
    log: bool = False
    points: int | None = Field(None, ge=2, le=1000)
    values: list[int] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        _check_range(self.low, self.high, self.log, self.values)
        return self


class CategoricalParam(Strict):
    type: Literal["categorical"]
    choices: list[str | int | float | bool] = Field(min_length=1)


class LayersParam(Strict):
    """Hidden layer sizes: ``depth`` range and per-layer ``units`` range (log-scale by
    default), or explicit ``values`` (a list of layer-size lists; required for grid)."""

    type: Literal["layers"]
    depth: tuple[int, int] | None = None
    units: tuple[int, int] | None = None
    log: bool = True
    values: list[list[int]] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _check(self) -> LayersParam:
        if self.values is not None:
            if self.depth is not None or self.units is not None:
                raise ValueError("give either 'values' or 'depth'/'units', not both")
            for layers in self.values:
                if not 1 <= len(layers) <= 16 or any(not 1 <= u <= MAX_UNITS for u in layers):
                    raise ValueError(
                        f"each entry of 'values' must be a list of 1 to 16 layer sizes, "
                        f"each between 1 and {MAX_UNITS}"
                    )
            return self
        if self.depth is None or self.units is None:
            raise ValueError("give 'depth' and 'units' ranges, or explicit 'values'")
        if not 1 <= self.depth[0] <= self.depth[1] <= 16:
            raise ValueError("depth must be [low, high] with 1 <= low <= high <= 16")
        if not 1 <= self.units[0] <= self.units[1] <= MAX_UNITS:
            raise ValueError(f"units must be [low, high] with 1 <= low <= high <= {MAX_UNITS}")
        return self


def _check_range(
    low: float | None, high: float | None, log: bool, values: list[Any] | None
) -> None:
    if values is not None:
        if low is not None or high is not None:
            raise ValueError("give either 'values' or 'low'/'high', not both")
        if log and any(v <= 0 for v in values):
            raise ValueError("log-scale values must all be > 0")
        return
    if low is None or high is None:
        raise ValueError("give 'low' and 'high', or explicit 'values'")
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("low and high must be finite")
    if not low < high:
        raise ValueError(f"low must be < high (got low={low}, high={high})")
    if log and low <= 0:
        raise ValueError(f"log-scale range needs low > 0 (got low={low})")


ParamSpec = Annotated[
    FloatParam | IntParam | CategoricalParam | LayersParam, Field(discriminator="type")
]

# Each tunable knob, the parameter types it accepts, and the allowed values where fixed.
KNOBS: dict[str, tuple[str, ...]] = {
    "lr": ("float", "categorical"),
    "keep_prob": ("float", "categorical"),
    "weight_decay": ("float", "categorical"),
    "momentum": ("float", "categorical"),
    "batch_size": ("int", "categorical"),
    "epochs": ("int", "categorical"),
    "hidden": ("layers",),
    "activation": ("categorical",),
    "optimizer": ("categorical",),
    "weight_init": ("categorical",),
    # CNN (model: cnn): the number of blocks and their channels, and settings of every block
    "conv_channels": ("layers",),
    "kernel_size": ("int", "categorical"),
    "stride": ("int", "categorical"),
    "pool": ("categorical",),
    "conv_batch_norm": ("categorical",),
    "conv_head": ("categorical",),
    # image datasets: augmentation of training batches
    "augment_shift": ("int", "categorical"),
    "augment_rotation": ("float", "categorical"),
    "l1": ("float", "categorical"),
    "batch_norm": ("categorical",),
    "residual": ("categorical",),
    "lr_schedule": ("categorical",),
    "lr_step_epochs": ("int", "categorical"),
    "lr_gamma": ("float", "categorical"),
    "lr_warmup_epochs": ("int", "categorical"),
    "clip_norm": ("float", "categorical"),
    "patience": ("int", "categorical"),
    "min_delta": ("float", "categorical"),
}
_CHOICES: dict[str, tuple[Any, ...]] = {
    "activation": ACTIVATIONS,
    "optimizer": OPTIMIZERS,
    "weight_init": WEIGHT_INITS,
    "pool": POOLS,
    "conv_head": CONV_HEADS,
    "lr_schedule": LR_SCHEDULES,
}
BOOL_KNOBS = ("batch_norm", "residual", "conv_batch_norm")
# Knobs whose values must be whole numbers (a categorical's choices too).
INT_KNOBS = (
    "batch_size",
    "epochs",
    "kernel_size",
    "stride",
    "augment_shift",
    "lr_step_epochs",
    "lr_warmup_epochs",
    "patience",
)
# Inclusive/exclusive bounds of numeric knobs: (low, high, low_inclusive).
_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "lr": (0.0, 100.0, False),
    "keep_prob": (0.0, 1.0, False),
    "weight_decay": (0.0, 1.0, True),
    "momentum": (0.0, 1.0, True),
    "batch_size": (1.0, 65536.0, True),
    "epochs": (1.0, 1000.0, True),
    "kernel_size": (1.0, MAX_KERNEL, True),
    "stride": (1.0, MAX_STRIDE, True),
    "augment_shift": (0.0, MAX_SHIFT, True),
    "augment_rotation": (0.0, MAX_ROTATION, True),
    "l1": (0.0, 1.0, True),
    "lr_step_epochs": (1.0, 1000.0, True),
    "lr_gamma": (0.0, 1.0, False),
    "lr_warmup_epochs": (0.0, 1000.0, True),
    "clip_norm": (0.0, 1e6, False),
    "patience": (1.0, 1000.0, True),
    "min_delta": (0.0, 1e6, True),
}


def check_knob_value(knob: str, value: Any) -> None:
    """Raise ValueError if ``value`` is not a legal fixed value of ``knob``."""
    if knob in BOOL_KNOBS:
        if not isinstance(value, bool):
            raise ValueError(f"{knob} must be true or false, got {value!r}")
        return
    if knob in _CHOICES:
        if isinstance(value, bool) or value not in _CHOICES[knob]:
            raise ValueError(f"{knob} must be one of {list(_CHOICES[knob])}, got {value!r}")
        return
    if knob in _BOUNDS:
        lo, hi, lo_inclusive = _BOUNDS[knob]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{knob} must be a number, got {value!r}")
        ok_low = value >= lo if lo_inclusive else value > lo
        if not (ok_low and value <= hi and math.isfinite(value)):
            bracket = "[" if lo_inclusive else "("
            raise ValueError(f"{knob} must be in {bracket}{lo:g}, {hi:g}], got {value!r}")


def param_values(param: Any) -> list[Any]:
    """The extreme or explicit values of a parameter, for bound checks."""
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    if isinstance(param, FloatParam | IntParam):
        return list(param.values) if param.values is not None else [param.low, param.high]
    return []


def grid_axis_length(p: Any) -> int:
    return len(grid_axis_values(p))


def grid_axis_values(p: Any) -> list[Any]:
    """The values one grid axis takes: explicit values/choices, or ``points`` values
    spread evenly over [low, high] (geometrically when ``log``); ints deduplicated."""
    if isinstance(p, CategoricalParam):
        return list(p.choices)
    if isinstance(p, LayersParam):
        return [list(v) for v in p.values or []]
    if p.values is not None:
        return list(dict.fromkeys(p.values))
    n, low, high = int(p.points), float(p.low), float(p.high)
    if p.log:
        a, b = math.log(low), math.log(high)
        raw = [math.exp(a + (b - a) * i / (n - 1)) for i in range(n)]
    else:
        raw = [low + (high - low) * i / (n - 1) for i in range(n)]
    raw[0], raw[-1] = low, high
    if isinstance(p, IntParam):
        return list(dict.fromkeys(int(round(v)) for v in raw))
    return [min(max(float(f"{v:.12g}"), low), high) for v in raw]
