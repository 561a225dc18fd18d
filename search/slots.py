"""A budget slot's parameters, as a pure function of (spec, k).

Random search draws each parameter keyed on (seed, k, name); grid search takes the k-th
point of the Cartesian product; quasi-random search (qmc) takes the k-th point of a
scrambled Sobol sequence seeded by the spec, one dimension per parameter that the space can
ask for (so the first 2^m slots cover every parameter's range evenly). A retried slot
therefore repeats its configuration, grids need nothing enqueued when a study is
submitted, and 1 worker or 4 run the same set. The worker writes the parameters into the
Optuna trial it creates, so the study's sampler is never asked (adaptive samplers such as
TPE, CMA-ES and GP are asked as usual instead).
"""

from __future__ import annotations

import math
import warnings
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
from search.spec import ExperimentSpec, LayersParam, ParamSpec

ADAPTIVE_SAMPLERS = ("tpe", "cmaes", "gp")


@dataclass
class SlotTrial:
    """Stands in for an Optuna trial while ``search.space.suggest`` picks a slot's
    parameters: each suggestion is the grid point's value or a keyed random draw, and is
    recorded (with its distribution) for the Optuna trial made from it."""

    seed: int
    slot: int
    point: dict[str, Any] | None = None  # the grid point, for grid search
    unit: dict[str, float] | None = None  # the Sobol point's coordinates, for qmc search
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
        elif self.unit is not None:
            value = from_unit(self.unit[name], distribution)
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
    sampler, seed = spec.search.sampler, spec.search.seed
    point = grid_point(space, slot) if sampler == "grid" else None
    unit = sobol_point(space, seed, slot) if sampler == "qmc" else None
    trial = SlotTrial(seed=seed, slot=slot, point=point, unit=unit)
    knobs = suggest(trial, space)
    return SlotParams(knobs=knobs, params=trial.params, distributions=trial.distributions)


def qmc_dimensions(space: dict[str, ParamSpec]) -> list[str]:
    """Every parameter name ``suggest`` can ask for, in a fixed order: one Sobol dimension
    each (a range of layers has its depth and the units of its deepest possible stack)."""
    names: list[str] = []
    for name, p in space.items():
        if isinstance(p, LayersParam) and p.values is None:
            assert p.depth is not None
            names += [f"{name}.depth", *(f"{name}.units_{i}" for i in range(p.depth[1]))]
        else:
            names.append(name)
    return names


def sobol_point(space: dict[str, ParamSpec], seed: int, slot: int) -> dict[str, float]:
    """Coordinates in [0, 1) of point ``slot`` of the Sobol sequence scrambled with ``seed``."""
    from scipy.stats import qmc  # a worker-only import: the API never draws

    names = qmc_dimensions(space)
    if not names:
        return {}
    engine = qmc.Sobol(d=len(names), scramble=True, seed=seed)
    with warnings.catch_warnings():  # one point at a time is not a power-of-2 batch
        warnings.simplefilter("ignore", UserWarning)
        if slot:
            engine.fast_forward(slot)
        point = engine.random(1)[0]
    return {name: float(u) for name, u in zip(names, point, strict=True)}


def from_unit(u: float, distribution: BaseDistribution) -> Any:
    """The value at quantile ``u`` of a uniform (log-uniform for log ranges) distribution."""
    u = min(max(u, 0.0), math.nextafter(1.0, 0.0))
    if isinstance(distribution, CategoricalDistribution):
        choices = distribution.choices
        return choices[int(u * len(choices))]
    if isinstance(distribution, IntDistribution):
        low, high = distribution.low - 0.5, distribution.high + 0.5  # each int an equal share
    else:
        assert isinstance(distribution, FloatDistribution)
        low, high = distribution.low, distribution.high
    if distribution.log:
        value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    else:
        value = low + u * (high - low)
    if isinstance(distribution, IntDistribution):
        return min(max(round(value), distribution.low), distribution.high)
    return min(max(value, distribution.low), distribution.high)


__all__ = [
    "ADAPTIVE_SAMPLERS",
    "SlotParams",
    "SlotTrial",
    "from_unit",
    "is_adaptive",
    "qmc_dimensions",
    "slot_params",
    "sobol_point",
]
