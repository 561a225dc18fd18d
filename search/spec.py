"""ExperimentSpec: the one contract shared by the API, the CLI and the workers.

Pure pydantic: importing this module pulls in neither torch nor optuna, so the API and
the CLI can validate specs cheaply. The training knobs (names, bounds, defaults, choices)
are ``search.knobs``'s table and the built-in datasets ``search.builtin_data``'s, which
``models/`` reads too.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, ModelWrapValidatorHandler, field_validator, model_validator

from search._conv import (
    AUGMENT_KNOBS,
    CNN_KNOBS,
    IMAGE_SHAPES,
    MODELS,
    SYNTHETIC,
    ConvBlockSpec,
    conv_blocks,
    deepest_channels,
    image_problem,
)
from search._dataset import DATASET_NAME_PATTERN, DATASET_TASKS, MAX_SEED, DatasetSpec
from search._external import (
    DEFAULT_LOSS_METRIC,
    EXTERNAL,
    EXTERNAL_PARTS,
    EXTERNAL_TASK,
    NAME_PATTERN,
    RESERVED_METRIC,
    SPEC_MODEL,
    check_name,
    validating_external,
)
from search._params import (
    CategoricalParam,
    FloatParam,
    IntParam,
    LayersParam,
    ParamSpec,
    grid_axis_length,
    grid_axis_values,
    param_values,
)
from search._params import Strict as _Strict
from search._synthetic import synthetic_problem, with_synthetic_dataset
from search._training import TrainingSpec
from search.knobs import (
    ACTIVATIONS,
    CONV_HEADS,
    INT_KNOBS,
    LR_SCHEDULES,
    MAX_CHANNELS,
    OPTIMIZERS,
    POOLS,
    WEIGHT_INITS,
    check_knob_value,
)
from search.knobs import SEARCHABLE as KNOBS

# random, grid and qmc draw slot k's parameters as a pure function of (spec, k); tpe,
# cmaes and gp are Optuna's adaptive samplers (search.slots.ADAPTIVE_SAMPLERS).
SamplerName = Literal["random", "grid", "qmc", "tpe", "cmaes", "gp"]
SAMPLERS: tuple[str, ...] = get_args(SamplerName)
PRUNERS = ("none", "median", "percentile", "successive_halving", "hyperband")
METRICS = ("dev_loss", "dev_accuracy", "dev_rmse", "train_loss")
# Objectives that only make sense for one task.
METRIC_TASKS: dict[str, str] = {"dev_accuracy": "classification", "dev_rmse": "regression"}
TASKS = ("classification", "regression")


def check_objective_fits(metric: str, task: str, dataset: str) -> None:
    """Raise ValueError when the objective ``metric`` needs the other task."""
    needed = METRIC_TASKS.get(metric)
    if needed is not None and needed != task:
        raise ValueError(f"objective.metric {metric} needs a {needed} dataset; {dataset} is {task}")


# ---------------------------------------------------------------- the spec


class Objective(_Strict):
    """What the search optimises: a metric the trials report, and which way is better.
    A built-in model's metric is one of ``METRICS`` with its natural direction (the default);
    ``model: external`` names any metric its code reports and must say the direction."""

    metric: str = Field("dev_loss", max_length=64)
    direction: Literal["minimize", "maximize"] | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if validating_external():
            check_name("metric", metric)
        elif metric not in METRICS:
            raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
        return metric

    @model_validator(mode="after")
    def _direction(self) -> Objective:
        if validating_external():
            if self.direction is None:
                raise ValueError(
                    f"direction: say whether to minimize or maximize {self.metric!r} "
                    "(model external reports metrics hpsearch does not know)"
                )
            return self
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
        if validating_external():  # the user's own code: any names, no knob bounds
            for name in space:
                check_name("parameter", name)
            return space
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


class PruningSpec(_Strict):
    """``loss_metric`` (model external only, default ``train_loss``): the reported loss the
    divergence rule watches; a built-in model's trainer watches its own training loss."""

    divergence_factor: float = Field(3.0, gt=1.0, le=1e6)
    pruner: Literal["none", "median", "percentile", "successive_halving", "hyperband"] = "none"
    warmup_epochs: int = Field(1, ge=0, le=1000)
    loss_metric: str | None = Field(None, max_length=64)

    @field_validator("loss_metric")
    @classmethod
    def _loss_metric(cls, name: str | None) -> str | None:
        if name is None:
            return DEFAULT_LOSS_METRIC if validating_external() else None
        if not validating_external():
            raise ValueError("loss_metric is a setting of model external")
        check_name("metric", name)
        return name


class ExperimentSpec(_Strict):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$")
    # None for model external (its code owns its data); required by every other model.
    dataset: DatasetSpec | None = Field(None, validate_default=True)
    model: Literal["mlp", "cnn", "synthetic", "external"] = "mlp"
    # Required for model external; a built-in model's default is its dev_loss.
    objective: Objective = Field(None, validate_default=True)
    search: SearchSpec = Field(default_factory=SearchSpec)
    # None for model external; every other model gets the defaults when it is left out.
    training: TrainingSpec | None = Field(None, validate_default=True)
    pruning: PruningSpec = Field(default_factory=PruningSpec)

    @model_validator(mode="wrap")
    @classmethod
    def _model_rules(cls, data: Any, handler: ModelWrapValidatorHandler[ExperimentSpec]) -> Any:
        """Validate every part by the rules of this spec's model (``search._external``)."""
        model = data.get("model") if isinstance(data, dict) else getattr(data, "model", None)
        token = SPEC_MODEL.set(model if isinstance(model, str) else None)
        try:
            return handler(data)
        finally:
            SPEC_MODEL.reset(token)

    @model_validator(mode="before")
    @classmethod
    def _synthetic_dataset(cls, data: Any) -> Any:
        return with_synthetic_dataset(data)

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_by_name(cls, v: Any) -> Any:
        if validating_external():
            if v is not None:
                raise ValueError(EXTERNAL_PARTS["dataset"])
            return v
        if v is None:
            raise ValueError("name a built-in dataset, or an uploaded one by name or id")
        if isinstance(v, str):
            return {"name": v}
        if isinstance(v, int) and not isinstance(v, bool):
            return {"id": v}
        return v

    @field_validator("objective", mode="before")
    @classmethod
    def _objective(cls, v: Any) -> Any:
        if v is None and validating_external():
            raise ValueError(
                "name the metric your code reports and which way is better, e.g. "
                "{metric: val_auc, direction: maximize}"
            )
        return {} if v is None else v

    @field_validator("training", mode="before")
    @classmethod
    def _default_training(cls, v: Any) -> Any:
        if validating_external():
            if v is not None:
                raise ValueError(EXTERNAL_PARTS["training"])
            return v
        return {} if v is None else v

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        if self.model != EXTERNAL:
            self._check_trained()
        if self.search.sampler == "grid":
            size = _check_grid(self.search.space)
            if "n_trials" in self.search.model_fields_set and self.search.n_trials < size:
                raise ValueError(
                    f"search.n_trials ({self.search.n_trials}) is smaller than the grid "
                    f"({size} points); every grid point runs exactly once"
                )
            self.search.n_trials = size  # the grid is the budget
        return self

    def _check_trained(self) -> None:
        """The rules of the models hpsearch trains itself."""
        assert self.dataset is not None and self.training is not None  # their validators
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

    @property
    def external(self) -> bool:
        """Trials of the user's own code, claimed over the REST trial API."""
        return self.model == EXTERNAL

    @property
    def data(self) -> DatasetSpec:
        """The dataset of a built-in model's spec (model external has none)."""
        if self.dataset is None:
            raise ValueError(f"model {self.model} has no dataset")
        return self.dataset

    @property
    def train(self) -> TrainingSpec:
        """The training settings of a built-in model's spec (model external has none)."""
        if self.training is None:
            raise ValueError(f"model {self.model} has no training settings")
        return self.training

    @property
    def loss_metric(self) -> str:
        """The reported loss the divergence rule watches (model external)."""
        return self.pruning.loss_metric or DEFAULT_LOSS_METRIC

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
        training=spec.train,
        space=spec.search.space,
        image_shape=image_shape,
        dataset=spec.data.label,
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
    "EXTERNAL",
    "EXTERNAL_TASK",
    "NAME_PATTERN",
    "RESERVED_METRIC",
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
