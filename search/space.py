"""Search space: the only place that calls ``trial.suggest_*``.

A space maps knob names (lr, keep_prob, hidden, ...) to parameter specs. Optuna sees
flat parameters; layer sizes are encoded as ``<name>.depth`` and ``<name>.units_<i>``
(range) or one categorical ``"128-64"`` string (explicit values). ``suggest`` returns the
decoded knob values, e.g. ``{"lr": 0.003, "hidden": [128, 64]}``.
"""

from __future__ import annotations

import itertools
from typing import Any

import optuna

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


def suggest(trial: optuna.Trial, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Ask ``trial`` for every knob of ``space``; return decoded knob values."""
    return {name: _suggest_one(trial, name, p) for name, p in space.items()}


def _suggest_one(trial: optuna.Trial, name: str, p: ParamSpec) -> Any:
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


def _suggest_layers(trial: optuna.Trial, name: str, p: LayersParam) -> list[int]:
    if p.values is not None:
        choices = [encode_layers(v) for v in p.values]
        return decode_layers(str(trial.suggest_categorical(name, choices)))
    assert p.depth is not None and p.units is not None
    depth = trial.suggest_int(f"{name}.depth", p.depth[0], p.depth[1])
    return [
        trial.suggest_int(f"{name}.units_{i}", p.units[0], p.units[1], log=p.log)
        for i in range(depth)
    ]


def grid_points(space: dict[str, ParamSpec]) -> list[dict[str, Any]]:
    """The Cartesian product of the grid axes, as Optuna parameter dicts (encoded)."""
    names = list(space)
    axes = []
    for name in names:
        values = grid_axis_values(space[name])
        if isinstance(space[name], LayersParam):
            values = [encode_layers(v) for v in values]
        axes.append(values)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]


__all__ = ["decode_layers", "encode_layers", "grid_points", "suggest"]
