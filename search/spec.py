"""ExperimentSpec: the one contract shared by the API, the CLI and the workers.

Pure pydantic: importing this module pulls in neither torch nor optuna, so the API and
the CLI can validate specs cheaply. Names of datasets, activations, optimizers and weight
inits are listed here; ``tests/search/test_spec.py`` checks they match ``models/``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

DATASET_TASKS: dict[str, Literal["classification", "regression"]] = {
    "digits": "classification",
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "moons": "classification",
    "diabetes": "regression",
}
ACTIVATIONS = ("relu", "tanh", "sigmoid", "leaky_relu")
OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
WEIGHT_INITS = ("xavier", "he", "normal")
SAMPLERS = ("random", "grid", "tpe")
PRUNERS = ("none", "median", "percentile", "successive_halving", "hyperband")
METRICS = ("dev_loss", "dev_accuracy", "train_loss")

DatasetName = Literal["digits", "iris", "wine", "breast_cancer", "moons", "diabetes"]
Activation = Literal["relu", "tanh", "sigmoid", "leaky_relu"]
OptimizerName = Literal["sgd", "momentum", "adam", "rmsprop"]
WeightInit = Literal["xavier", "he", "normal"]


MAX_SEED = 2**32 - 1  # numpy/scikit-learn seeds are 32-bit
MAX_UNITS = 65536


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# ---------------------------------------------------------------- dataset


class DatasetSpec(_Strict):
    """Built-in dataset and its seeded train/dev/test split (fractions sum to 1)."""

    name: DatasetName
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = Field(0, ge=0, le=MAX_SEED)

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f <= 0 for f in v):
            raise ValueError("every split fraction must be > 0")
        if not math.isclose(sum(v), 1.0, abs_tol=1e-6):
            raise ValueError(f"split fractions must sum to 1, got {sum(v):g}")
        return v

    @property
    def task(self) -> str:
        return DATASET_TASKS[self.name]


# ---------------------------------------------------------------- search space


class FloatParam(_Strict):
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


class IntParam(_Strict):
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


class CategoricalParam(_Strict):
    type: Literal["categorical"]
    choices: list[str | int | float | bool] = Field(min_length=1)


class LayersParam(_Strict):
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
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "activation": ACTIVATIONS,
    "optimizer": OPTIMIZERS,
    "weight_init": WEIGHT_INITS,
}
# Inclusive/exclusive bounds of numeric knobs: (low, high, low_inclusive).
_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "lr": (0.0, 100.0, False),
    "keep_prob": (0.0, 1.0, False),
    "weight_decay": (0.0, 1.0, True),
    "momentum": (0.0, 1.0, True),
    "batch_size": (1.0, 65536.0, True),
    "epochs": (1.0, 1000.0, True),
}


def _check_knob_value(knob: str, value: Any) -> None:
    """Raise ValueError if ``value`` is not a legal fixed value of ``knob``."""
    if knob in _CHOICES:
        if value not in _CHOICES[knob]:
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


# ---------------------------------------------------------------- the spec


class Objective(_Strict):
    metric: Literal["dev_loss", "dev_accuracy", "train_loss"] = "dev_loss"
    direction: Literal["minimize", "maximize"] | None = None

    @model_validator(mode="after")
    def _direction(self) -> Objective:
        natural: Literal["minimize", "maximize"] = (
            "maximize" if self.metric == "dev_accuracy" else "minimize"
        )
        if self.direction is None:
            self.direction = natural
        elif self.direction != natural:
            raise ValueError(
                f"direction must be {natural!r} for metric {self.metric!r}, got {self.direction!r}"
            )
        return self


class SearchSpec(_Strict):
    sampler: Literal["random", "grid", "tpe"] = "random"
    n_trials: int = Field(20, ge=1, le=10000)
    parallelism: int = Field(1, ge=1, le=1024)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    space: dict[str, ParamSpec] = Field(default_factory=dict)

    @field_validator("space")
    @classmethod
    def _known_knobs(cls, space: dict[str, Any]) -> dict[str, Any]:
        for name, param in space.items():
            if name not in KNOBS:
                raise ValueError(f"unknown knob {name!r}; tunable knobs are {sorted(KNOBS)}")
            if param.type not in KNOBS[name]:
                raise ValueError(
                    f"{name}: type {param.type!r} not allowed, use one of {list(KNOBS[name])}"
                )
            for value in _param_values(param):
                try:
                    _check_knob_value(name, value)
                except ValueError as e:
                    raise ValueError(f"{name}: {e}") from None
            if (
                name in ("batch_size", "epochs")
                and param.type == "categorical"
                and any(not isinstance(v, int) or isinstance(v, bool) for v in param.choices)
            ):
                raise ValueError(f"{name}: choices must be integers")
        return space


def _param_values(param: Any) -> list[Any]:
    """The extreme or explicit values of a parameter, for bound checks."""
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    if isinstance(param, FloatParam | IntParam):
        return list(param.values) if param.values is not None else [param.low, param.high]
    return []


class TrainingSpec(_Strict):
    """Fixed training settings; any knob named in ``search.space`` overrides its value here."""

    epochs: int = Field(20, ge=1, le=1000)
    batch_size: int = Field(64, ge=1, le=65536)
    optimizer: OptimizerName = "adam"
    lr: float = Field(1e-3, gt=0, le=100)
    momentum: float = Field(0.9, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0, le=1)
    keep_prob: float = Field(1.0, gt=0, le=1)
    hidden: list[int] = Field(default_factory=lambda: [64], min_length=1, max_length=16)
    activation: Activation = "relu"
    weight_init: WeightInit = "he"

    @field_validator("hidden")
    @classmethod
    def _positive_units(cls, v: list[int]) -> list[int]:
        if any(not 1 <= u <= MAX_UNITS for u in v):
            raise ValueError(f"layer sizes must be between 1 and {MAX_UNITS}")
        return v


class PruningSpec(_Strict):
    divergence_factor: float = Field(3.0, gt=1.0, le=1e6)
    pruner: Literal["none", "median", "percentile", "successive_halving", "hyperband"] = "none"
    warmup_epochs: int = Field(1, ge=0, le=1000)


class ExperimentSpec(_Strict):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$")
    dataset: DatasetSpec
    model: Literal["mlp"] = "mlp"
    objective: Objective = Field(default_factory=Objective)
    search: SearchSpec = Field(default_factory=SearchSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    pruning: PruningSpec = Field(default_factory=PruningSpec)

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_by_name(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        if self.objective.metric == "dev_accuracy" and self.dataset.task != "classification":
            raise ValueError(
                f"objective.metric dev_accuracy needs a classification dataset; "
                f"{self.dataset.name} is {self.dataset.task}"
            )
        if self.search.sampler == "grid":
            size = _check_grid(self.search.space)
            if "n_trials" in self.search.model_fields_set and self.search.n_trials < size:
                raise ValueError(
                    f"search.n_trials ({self.search.n_trials}) is smaller than the grid "
                    f"({size} points); every grid point runs exactly once"
                )
            self.search.n_trials = size  # the grid is the budget
        return self

    @property
    def direction(self) -> str:
        assert self.objective.direction is not None
        return self.objective.direction


def _check_grid(space: dict[str, Any]) -> int:
    """Check a grid space and return its number of points."""
    if not space:
        raise ValueError("search.space: grid search needs at least one parameter")
    size = 1
    for name, p in space.items():
        if isinstance(p, FloatParam | IntParam) and p.values is None and p.points is None:
            raise ValueError(
                f"search.space.{name}: grid search needs 'values' or 'points' for a range"
            )
        if isinstance(p, LayersParam) and p.values is None:
            raise ValueError(f"search.space.{name}: grid search needs explicit layer 'values'")
        size *= grid_axis_length(p)
    if size > 10000:
        raise ValueError(f"search.space: grid has {size} points, more than 10000")
    return size


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


__all__ = [
    "ACTIVATIONS",
    "DATASET_TASKS",
    "KNOBS",
    "METRICS",
    "OPTIMIZERS",
    "PRUNERS",
    "SAMPLERS",
    "WEIGHT_INITS",
    "CategoricalParam",
    "DatasetSpec",
    "ExperimentSpec",
    "FloatParam",
    "IntParam",
    "LayersParam",
    "Objective",
    "ParamSpec",
    "PruningSpec",
    "SearchSpec",
    "TrainingSpec",
    "grid_axis_length",
    "grid_axis_values",
]
