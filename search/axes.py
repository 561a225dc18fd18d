"""Plot and importance axes of a search space: one numeric or categorical axis per
searched knob, two for layer sizes (depth, and mean units per layer), so that every trial
has a value on every axis. Pure Python (no Optuna, no torch): pages and the parameter-
importance evaluator both read trials' decoded knob values (hps_trials.params) through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from search.knobs import LOG_AXIS_KNOBS
from search.spec import CategoricalParam, FloatParam, IntParam, LayersParam, ParamSpec

LOG_SCALE_KNOBS = LOG_AXIS_KNOBS  # search.knobs


@dataclass(frozen=True)
class Axis:
    """One axis: ``kind`` is "float", "int" or "categorical"; ``low``/``high`` bound a
    numeric axis (``log`` when sampled on a log scale); ``choices`` list a categorical one."""

    name: str  # e.g. "lr", "hidden.depth", "hidden.units"
    knob: str  # the knob it reads, e.g. "hidden"
    label: str  # what a plot calls it
    kind: str
    log: bool = False
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    read: Callable[[Any], Any] = lambda v: v  # knob value -> axis value (None if absent)

    def value(self, params: dict[str, Any]) -> Any:
        raw = params.get(self.knob)
        return None if raw is None else self.read(raw)


def _depth(layers: Any) -> int | None:
    return len(layers) if isinstance(layers, list | tuple) and layers else None


def _mean_units(layers: Any) -> float | None:
    if not isinstance(layers, list | tuple) or not layers:
        return None
    return float(sum(layers)) / len(layers)


def layers_label(layers: Any) -> str:
    """``[128, 64]`` -> ``"128-64"``, the way specs and tables write layer sizes."""
    if isinstance(layers, list | tuple):
        return "-".join(str(u) for u in layers)
    return "" if layers is None else str(layers)


def _numeric_axis(name: str, p: FloatParam | IntParam) -> Axis:
    if p.values is not None:
        low, high = float(min(p.values)), float(max(p.values))
    else:
        assert p.low is not None and p.high is not None
        low, high = float(p.low), float(p.high)
    kind = "float" if isinstance(p, FloatParam) else "int"
    # A learning rate is read on a log scale even when the spec lists its values.
    log = (p.log or name in LOG_SCALE_KNOBS) and low > 0
    return Axis(name, name, name, kind, log=log, low=low, high=high)


def _layer_axes(name: str, p: LayersParam) -> list[Axis]:
    if p.values is not None:
        depths = [len(v) for v in p.values]
        means = [sum(v) / len(v) for v in p.values]
        d_low, d_high, u_low, u_high = min(depths), max(depths), min(means), max(means)
    else:
        assert p.depth is not None and p.units is not None
        d_low, d_high = p.depth
        u_low, u_high = p.units
    return [
        Axis(f"{name}.depth", name, f"{name}: layers", "int", low=d_low, high=d_high, read=_depth),
        Axis(
            f"{name}.units",
            name,
            f"{name}: units per layer (mean)",
            "float",
            log=p.log,
            low=float(u_low),
            high=float(u_high),
            read=_mean_units,
        ),
    ]


def space_axes(space: dict[str, ParamSpec]) -> list[Axis]:
    """The axes of a spec's ``search.space``, in the spec's order."""
    axes: list[Axis] = []
    for name, p in space.items():
        if isinstance(p, CategoricalParam):
            axes.append(Axis(name, name, name, "categorical", choices=tuple(p.choices)))
        elif isinstance(p, LayersParam):
            axes += _layer_axes(name, p)
        else:
            axes.append(_numeric_axis(name, p))
    return axes


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


__all__ = ["Axis", "finite", "layers_label", "space_axes"]
