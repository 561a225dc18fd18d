"""Search space: the only place that calls ``trial.suggest_*``.

A space maps knob names (lr, keep_prob, hidden, ...) to parameter specs. Optuna sees
flat parameters; layer sizes are encoded as ``<name>.depth`` and ``<name>.units_<i>``
(range) or one categorical ``"128-64"`` string (explicit values). ``suggest`` returns the
decoded knob values, e.g. ``{"lr": 0.003, "hidden": [128, 64]}``.
"""

from __future__ import annotations

from typing import Any, Protocol

from search.spec import (
    CategoricalParam,
    FloatParam,
    IntParam,
    LayersParam,
    ParamSpec,
    grid_axis_values,
)


def encode_layers(layers: list[int]) -> str:
    return "-".join(str(u) for u in layers)


def decode_layers(text: str) -> list[int]:
    return [int(u) for u in text.split("-")]


class Suggester(Protocol):
    """What ``suggest`` asks of a trial: an ``optuna.Trial``, or ``search.slots.SlotTrial``."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        """A float in [low, high]."""

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int:
        """An int in [low, high]."""

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        """One of ``choices``."""


def suggest(trial: Suggester, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Ask ``trial`` for every knob of ``space``; return decoded knob values."""
    return {name: _suggest_one(trial, name, p) for name, p in space.items()}


def _suggest_one(trial: Suggester, name: str, p: ParamSpec) -> Any:
    if isinstance(p, CategoricalParam):
        return trial.suggest_categorical(name, p.choices)
    if isinstance(p, LayersParam):
        return _suggest_layers(trial, name, p)
    if p.values is not None:
        return trial.suggest_categorical(name, list(p.values))
    assert p.low is not None and p.high is not None
    if isinstance(p, FloatParam):
        return trial.suggest_float(name, p.low, p.high, log=p.log)
    assert isinstance(p, IntParam)
    return trial.suggest_int(name, int(p.low), int(p.high), log=p.log)


def _suggest_layers(trial: Suggester, name: str, p: LayersParam) -> list[int]:
    if p.values is not None:
        choices = [encode_layers(v) for v in p.values]
        return decode_layers(str(trial.suggest_categorical(name, choices)))
    assert p.depth is not None and p.units is not None
    depth = trial.suggest_int(f"{name}.depth", p.depth[0], p.depth[1])
    return [
        trial.suggest_int(f"{name}.units_{i}", p.units[0], p.units[1], log=p.log)
        for i in range(depth)
    ]


def _grid_axes(space: dict[str, ParamSpec]) -> list[tuple[str, list[Any]]]:
    axes = []
    for name, p in space.items():
        values = grid_axis_values(p)
        if isinstance(p, LayersParam):
            values = [encode_layers(v) for v in values]
        axes.append((name, values))
    return axes


def grid_point(space: dict[str, ParamSpec], k: int) -> dict[str, Any]:
    """The k-th point of the Cartesian product of the grid axes (``itertools.product``
    order: the last axis varies fastest), as Optuna parameters (layers encoded)."""
    point: dict[str, Any] = {}
    for name, values in reversed(_grid_axes(space)):
        k, i = divmod(k, len(values))
        point[name] = values[i]
    if k:
        raise ValueError("grid point index out of range")
    return {name: point[name] for name in space}


def grid_size(space: dict[str, ParamSpec]) -> int:
    size = 1
    for _, values in _grid_axes(space):
        size *= len(values)
    return size


__all__ = ["Suggester", "decode_layers", "encode_layers", "grid_point", "grid_size", "suggest"]
