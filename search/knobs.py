"""The training knobs: one table (torch-free, pydantic-free).

Everything else about a knob is derived from its row here: the spec's ``training`` block
(``search._training.TrainingSpec``: each field, its default and bounds), what
``search.space`` may search and how a fixed value is checked (``search._params``), which
knobs only a CNN or an image dataset takes (``search._conv``), the knobs a trial's
``TrainConfig`` is built from (``search.trial_runner``), and ``models.TrainConfig``'s
defaults and checks. Adding a knob is one row plus the training code that uses it;
``tests/search/test_knobs.py`` proves the derived pieces agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

ACTIVATIONS = ("relu", "tanh", "sigmoid", "leaky_relu")
OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop", "adamw")
WEIGHT_INITS = ("xavier", "he", "normal")
LR_SCHEDULES = ("constant", "step", "exponential", "cosine")
POOLS = ("max", "avg", "none")  # after a convolution block: 2x2 pooling, stride 2, or none
CONV_HEADS = ("avg", "flatten")  # global average pooling of the last map, or a flatten
MAX_UNITS, MAX_LAYERS = 65536, 16
MAX_CHANNELS = 1024
MAX_KERNEL, MAX_STRIDE = 15, 8
MAX_SHIFT, MAX_ROTATION = 4, 45.0  # augmentation: pixels, degrees

BUILT_IN = ("mlp", "cnn", "synthetic")  # every built-in model
STACKED_MODELS = ("mlp", "cnn")  # trained K at a time by --batch-trials (models.train_stacked)
NUMBER = ("float", "categorical")  # search.space parameter types of a float knob
WHOLE = ("int", "categorical")  # ... of an int knob
CHOICE = ("categorical",)


@dataclass(frozen=True)
class Knob:
    """One training knob.

    ``kind``: ``float``, ``int``, ``bool``, ``choice`` (one of ``choices``) or ``layers``
    (a list of sizes). Numbers lie in [``low``, ``high``], or (``low``, ``high``] when
    ``low_open``; ``optional``: None (off) is allowed too. ``search``: the parameter types
    ``search.space`` may give it (none: never searched). ``training``: a field of the
    spec's training block and of ``TrainConfig`` (the CNN's block knobs are not: they set
    every block of ``training.conv``). ``models``: the built-in models it applies to;
    ``images``: it needs an image dataset."""

    name: str
    kind: str
    default: Any = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[Any, ...] = ()
    optional: bool = False
    search: tuple[str, ...] = ()
    training: bool = True
    models: tuple[str, ...] = BUILT_IN
    images: bool = False
    log_axis: bool = False  # plotted on a log axis, however it is searched
    doc: str = ""

    def check(self, value: Any) -> None:
        """Raise ValueError if ``value`` is not a legal value of this knob."""
        if value is None and self.optional:
            return
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{self.name} must be true or false, got {value!r}")
        elif self.kind == "choice":
            if isinstance(value, bool) or value not in self.choices:
                raise ValueError(f"{self.name} must be one of {list(self.choices)}, got {value!r}")
        elif self.kind in ("float", "int"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{self.name} must be a number, got {value!r}")
            assert self.low is not None and self.high is not None
            ok_low = value > self.low if self.low_open else value >= self.low
            if not (ok_low and value <= self.high and math.isfinite(value)):
                bracket = "(" if self.low_open else "["
                raise ValueError(
                    f"{self.name} must be in {bracket}{self.low:g}, {self.high:g}], got {value!r}"
                )


def _float(name: str, default: Any, low: float, high: float, **kw: Any) -> Knob:
    return Knob(name, "float", default, low, high, search=kw.pop("search", NUMBER), **kw)


def _int(name: str, default: Any, low: float, high: float, **kw: Any) -> Knob:
    return Knob(name, "int", default, low, high, search=kw.pop("search", WHOLE), **kw)


def _choice(name: str, default: Any, choices: tuple[Any, ...], **kw: Any) -> Knob:
    return Knob(name, "choice", default, choices=choices, search=CHOICE, **kw)


def _bool(name: str, **kw: Any) -> Knob:
    return Knob(name, "bool", False, choices=(True, False), search=CHOICE, **kw)


CNN = ("cnn",)
TABLE: tuple[Knob, ...] = (
    _int("epochs", 20, 1, 1000),
    _int("batch_size", 64, 1, MAX_UNITS),
    _choice("optimizer", "adam", OPTIMIZERS),
    _float("lr", 1e-3, 0, 100, low_open=True, log_axis=True),
    _float("momentum", 0.9, 0, 1, doc="SGD with momentum only"),
    _float("weight_decay", 0.0, 0, 1, doc="L2 (decoupled for adamw)"),
    _float("l1", 0.0, 0, 1, doc="l1 * sum |w| over the weights, added to each batch loss"),
    _float("keep_prob", 1.0, 0, 1, low_open=True, doc="inverted dropout"),
    Knob("hidden", "layers", (64,), 1, MAX_UNITS, search=("layers",)),
    _choice("activation", "relu", ACTIVATIONS),
    _choice("weight_init", "he", WEIGHT_INITS),
    # model: cnn: the blocks' channels and settings of every block (training.conv)
    Knob(
        "conv_channels",
        "layers",
        None,
        1,
        MAX_CHANNELS,
        search=("layers",),
        training=False,
        models=CNN,
    ),
    _int("kernel_size", 3, 1, MAX_KERNEL, training=False, models=CNN),
    _int("stride", 1, 1, MAX_STRIDE, training=False, models=CNN),
    _choice("pool", "max", POOLS, training=False, models=CNN),
    _bool("conv_batch_norm", training=False, models=CNN),
    _choice("conv_head", "avg", CONV_HEADS, models=CNN),
    # image datasets: augmentation of training batches
    _int("augment_shift", 0, 0, MAX_SHIFT, images=True),
    _float("augment_rotation", 0.0, 0, MAX_ROTATION, images=True),
    # model: synthetic (models._synthetic): an epoch's sleep, and the losses' noise
    _float("seconds_per_epoch", 0.0, 0, 3600, search=(), models=("synthetic",)),
    _float("noise", 0.0, 0, 1, search=(), models=("synthetic",)),
    _bool("batch_norm", doc="BatchNorm1d after each hidden linear layer"),
    _bool("residual", doc="shortcuts around pairs of hidden layers"),
    _choice("lr_schedule", "constant", LR_SCHEDULES),
    _int("lr_step_epochs", 10, 1, 1000),
    _float("lr_gamma", 0.5, 0, 1, low_open=True),
    _int("lr_warmup_epochs", 0, 0, 1000),
    _float("clip_norm", None, 0, 1e6, low_open=True, optional=True),
    _int("patience", None, 1, 1000, optional=True, doc="early stopping; unset: off"),
    _float("min_delta", 0.0, 0, 1e6),
)
KNOB: dict[str, Knob] = {k.name: k for k in TABLE}
TRAINING: tuple[str, ...] = tuple(k.name for k in TABLE if k.training)  # TrainConfig's knobs
DEFAULTS: dict[str, Any] = {k.name: k.default for k in TABLE if k.training}
SEARCHABLE: dict[str, tuple[str, ...]] = {k.name: k.search for k in TABLE if k.search}
CNN_KNOBS: tuple[str, ...] = tuple(k.name for k in TABLE if k.models == CNN)
AUGMENT_KNOBS: tuple[str, ...] = tuple(k.name for k in TABLE if k.images)
SYNTHETIC_KNOBS: tuple[str, ...] = tuple(k.name for k in TABLE if k.models == ("synthetic",))
INT_KNOBS: tuple[str, ...] = tuple(k.name for k in TABLE if k.kind == "int")
LOG_AXIS_KNOBS: tuple[str, ...] = tuple(k.name for k in TABLE if k.log_axis)


def check_knob_value(knob: str, value: Any) -> None:
    """Raise ValueError if ``value`` is not a legal fixed value of ``knob`` (layers are
    checked where they are parsed)."""
    row = KNOB[knob]
    if row.kind != "layers":
        row.check(value)


__all__ = [
    "ACTIVATIONS",
    "AUGMENT_KNOBS",
    "BUILT_IN",
    "CNN_KNOBS",
    "CONV_HEADS",
    "DEFAULTS",
    "INT_KNOBS",
    "KNOB",
    "Knob",
    "LOG_AXIS_KNOBS",
    "LR_SCHEDULES",
    "MAX_CHANNELS",
    "MAX_KERNEL",
    "MAX_LAYERS",
    "MAX_ROTATION",
    "MAX_SHIFT",
    "MAX_STRIDE",
    "MAX_UNITS",
    "OPTIMIZERS",
    "POOLS",
    "SEARCHABLE",
    "STACKED_MODELS",
    "SYNTHETIC_KNOBS",
    "TABLE",
    "TRAINING",
    "WEIGHT_INITS",
    "check_knob_value",
]
