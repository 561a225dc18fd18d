"""ExperimentSpec: the one contract shared by the API, the CLI and the workers.

Pure pydantic: importing this module pulls in neither torch nor optuna, so the API and
the CLI can validate specs cheaply. Names of datasets, activations, optimizers and weight
inits are listed here; ``tests/search/test_spec.py`` checks they match ``models/``.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from search._conv import (
    AUGMENT_KNOBS,
    CNN_KNOBS,
    IMAGE_SHAPES,
    MODELS,
    SYNTHETIC,
    ConvBlockSpec,
    conv_blocks,
    deepest_channels,
    default_conv,
    image_problem,
)
from search._params import (
    ACTIVATIONS,
    CONV_HEADS,
    INT_KNOBS,
    KNOBS,
    LR_SCHEDULES,
    MAX_CHANNELS,
    MAX_ROTATION,
    MAX_SHIFT,
    MAX_UNITS,
    OPTIMIZERS,
    POOLS,
    WEIGHT_INITS,
    CategoricalParam,
    FloatParam,
    IntParam,
    LayersParam,
    ParamSpec,
    check_knob_value,
    grid_axis_length,
    grid_axis_values,
    param_values,
)
from search._params import Strict as _Strict
from search._synthetic import SYNTHETIC_TASK, synthetic_problem, with_synthetic_dataset

DATASET_TASKS: dict[str, Literal["classification", "regression"]] = {
    "digits": "classification",
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "moons": "classification",
    "diabetes": "regression",
}
# random, grid and qmc draw slot k's parameters as a pure function of (spec, k); tpe,
# cmaes and gp are Optuna's adaptive samplers (search.slots.ADAPTIVE_SAMPLERS).
SamplerName = Literal["random", "grid", "qmc", "tpe", "cmaes", "gp"]
SAMPLERS: tuple[str, ...] = get_args(SamplerName)
PRUNERS = ("none", "median", "percentile", "successive_halving", "hyperband")
METRICS = ("dev_loss", "dev_accuracy", "dev_rmse", "train_loss")
# Objectives that only make sense for one task.
METRIC_TASKS: dict[str, str] = {"dev_accuracy": "classification", "dev_rmse": "regression"}
TASKS = ("classification", "regression")
DATASET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$"
Activation = Literal["relu", "tanh", "sigmoid", "leaky_relu"]
OptimizerName = Literal["sgd", "momentum", "adam", "rmsprop", "adamw"]
LrScheduleName = Literal["constant", "step", "exponential", "cosine"]
WeightInit = Literal["xavier", "he", "normal"]


MAX_SEED = 2**32 - 1  # numpy/scikit-learn seeds are 32-bit


# ---------------------------------------------------------------- dataset


class DatasetSpec(_Strict):
    """A built-in dataset by name, or an uploaded one by name or ``id``, and its seeded
    train/dev/test split (fractions sum to 1). When a study is submitted the server checks
    that an uploaded dataset exists and stores both its id and its name. ``synthetic``
    is the synthetic model's placeholder: no data (``search._synthetic``)."""

    name: str | None = Field(None, min_length=1, max_length=200, pattern=DATASET_NAME_PATTERN)
    id: int | None = Field(None, ge=1, le=2**31 - 1)
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

    @model_validator(mode="after")
    def _named(self) -> DatasetSpec:
        if self.name is None and self.id is None:
            raise ValueError("name a built-in dataset, or an uploaded one by name or id")
        if self.id is not None and (self.name in DATASET_TASKS or self.name == SYNTHETIC):
            raise ValueError(f"{self.name!r} is a built-in dataset; it has no id")
        return self

    @property
    def builtin(self) -> bool:
        return self.id is None and (self.name in DATASET_TASKS or self.name == SYNTHETIC)

    @property
    def task(self) -> str | None:
        """The built-in dataset's task; None for an uploaded one (the server knows it)."""
        if not self.builtin or self.name is None:
            return None
        return DATASET_TASKS.get(self.name, SYNTHETIC_TASK)

    @property
    def label(self) -> str:
        return self.name if self.name is not None else f"dataset {self.id}"


def check_objective_fits(metric: str, task: str, dataset: str) -> None:
    """Raise ValueError when the objective ``metric`` needs the other task."""
    needed = METRIC_TASKS.get(metric)
    if needed is not None and needed != task:
        raise ValueError(f"objective.metric {metric} needs a {needed} dataset; {dataset} is {task}")


# ---------------------------------------------------------------- the spec


class Objective(_Strict):
    metric: Literal["dev_loss", "dev_accuracy", "dev_rmse", "train_loss"] = "dev_loss"
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
    sampler: SamplerName = "random"
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
            for value in param_values(param):
                try:
                    check_knob_value(name, value)
                except ValueError as e:
                    raise ValueError(f"{name}: {e}") from None
            if (
                name == "conv_channels"
                and max(max(c) for c in deepest_channels({name: param}, [])) > MAX_CHANNELS
            ):
                raise ValueError(f"{name}: channels must be between 1 and {MAX_CHANNELS}")
            if (
                name in INT_KNOBS
                and param.type == "categorical"
                and any(not isinstance(v, int) or isinstance(v, bool) for v in param.choices)
            ):
                raise ValueError(f"{name}: choices must be integers")
        return space


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


class PruningSpec(_Strict):
    divergence_factor: float = Field(3.0, gt=1.0, le=1e6)
    pruner: Literal["none", "median", "percentile", "successive_halving", "hyperband"] = "none"
    warmup_epochs: int = Field(1, ge=0, le=1000)


class ExperimentSpec(_Strict):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$")
    dataset: DatasetSpec
    model: Literal["mlp", "cnn", "synthetic"] = "mlp"
    objective: Objective = Field(default_factory=Objective)
    search: SearchSpec = Field(default_factory=SearchSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    pruning: PruningSpec = Field(default_factory=PruningSpec)

    @model_validator(mode="before")
    @classmethod
    def _synthetic_dataset(cls, data: Any) -> Any:
        return with_synthetic_dataset(data)

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_by_name(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"name": v}
        if isinstance(v, int) and not isinstance(v, bool):
            return {"id": v}
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        problem = synthetic_problem(
            model=self.model,
            dataset_name=self.dataset.name,
            dataset_id=self.dataset.id,
            metric=self.objective.metric,
            training=self.training,
        )
        if problem is not None:
            raise ValueError(f"{problem[0]}: {problem[1]}")
        task = self.dataset.task
        if task is not None:
            check_objective_fits(self.objective.metric, task, self.dataset.label)
            problem = check_image_fits(self, IMAGE_SHAPES.get(self.dataset.name or ""))
            if problem is not None:
                raise ValueError(f"{problem[0]}: {problem[1]}")
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


def check_image_fits(
    spec: ExperimentSpec, image_shape: tuple[int, int, int] | None
) -> tuple[str, str] | None:
    """(field, message) when the spec's CNN or augmentation does not fit its dataset (an
    image of ``image_shape``, or a table when None): checked for built-in datasets here,
    for uploaded ones (never images) when the study is created."""
    return image_problem(
        model=spec.model,
        training=spec.training,
        space=spec.search.space,
        image_shape=image_shape,
        dataset=spec.dataset.label,
    )


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


__all__ = [
    "ACTIVATIONS",
    "AUGMENT_KNOBS",
    "CNN_KNOBS",
    "CONV_HEADS",
    "IMAGE_SHAPES",
    "MODELS",
    "POOLS",
    "SYNTHETIC",
    "DATASET_TASKS",
    "KNOBS",
    "LR_SCHEDULES",
    "DATASET_NAME_PATTERN",
    "METRICS",
    "METRIC_TASKS",
    "OPTIMIZERS",
    "PRUNERS",
    "SAMPLERS",
    "TASKS",
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
    "ConvBlockSpec",
    "check_image_fits",
    "check_objective_fits",
    "conv_blocks",
    "grid_axis_length",
    "grid_axis_values",
]
