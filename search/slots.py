"""A budget slot's parameters, as a pure function of (spec, k).

Random search draws each parameter keyed on (seed, k, name); grid search takes the k-th
point of the Cartesian product. A retried slot therefore repeats its configuration, grids
need nothing enqueued when a study is submitted, and 1 worker or 4 run the same set. The
worker writes the parameters into the Optuna trial it creates, so the study's sampler is
never asked (adaptive samplers such as TPE are asked as usual instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from search.samplers import keyed_draw
from search.space import grid_point, suggest
from search.spec import ExperimentSpec

ADAPTIVE_SAMPLERS = ("tpe",)


@dataclass
class SlotTrial:
    """Stands in for an Optuna trial while ``search.space.suggest`` picks a slot's
    parameters: each suggestion is the grid point's value or a keyed random draw, and is
    recorded (with its distribution) for the Optuna trial made from it."""

    seed: int
    slot: int
    point: dict[str, Any] | None = None  # the grid point, for grid search
    params: dict[str, Any] = field(default_factory=dict)
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        return float(self._choose(name, FloatDistribution(low, high, log=log)))

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int:
        return int(self._choose(name, IntDistribution(low, high, log=log)))

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._choose(name, CategoricalDistribution(list(choices)))

    def _choose(self, name: str, distribution: BaseDistribution) -> Any:
        if self.point is not None:
            value = self.point[name]
        else:
            value = keyed_draw(self.seed, self.slot, name, distribution)
        self.params[name] = value
        self.distributions[name] = distribution
        return value


@dataclass(frozen=True)
class SlotParams:
    knobs: dict[str, Any]  # decoded, e.g. {"lr": 0.01, "hidden": [64, 32]}
    params: dict[str, Any]  # as Optuna stores them (layers flattened or encoded)
    distributions: dict[str, BaseDistribution]


def is_adaptive(spec: ExperimentSpec) -> bool:
    return spec.search.sampler in ADAPTIVE_SAMPLERS


def slot_params(spec: ExperimentSpec, slot: int) -> SlotParams:
    """Slot ``slot``'s configuration for a random or grid study."""
    if is_adaptive(spec):
        raise ValueError(f"{spec.search.sampler} chooses parameters adaptively, not by slot")
    space = spec.search.space
    point = grid_point(space, slot) if spec.search.sampler == "grid" else None
    trial = SlotTrial(seed=spec.search.seed, slot=slot, point=point)
    knobs = suggest(trial, space)
    return SlotParams(knobs=knobs, params=trial.params, distributions=trial.distributions)


__all__ = ["ADAPTIVE_SAMPLERS", "SlotParams", "SlotTrial", "is_adaptive", "slot_params"]
