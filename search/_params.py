"""Search-space parameter specs (pure pydantic); the knobs they may set are
``search.knobs``'s table.

Part of the spec contract, kept apart from ``search.spec`` for size; import these names
from ``search.spec``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from search.knobs import MAX_LAYERS, MAX_UNITS, Knob


class Strict(BaseModel):
    """Base of every spec model: unknown fields and NaN/inf are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


_TYPES: dict[str, Any] = {"float": float, "int": int, "bool": bool, "layers": list[int]}


def knob_field(knob: Knob) -> tuple[Any, Any]:
    """A knob's pydantic field: (annotation, default and bounds), from its table row."""
    kind = Literal[knob.choices] if knob.kind == "choice" else _TYPES[knob.kind]
    annotation = kind | None if knob.optional else kind
    if knob.kind == "layers":
        default = tuple(knob.default)
        return annotation, Field(
            default_factory=lambda: list(default), min_length=1, max_length=MAX_LAYERS
        )
    if knob.kind in ("float", "int"):
        if knob.low_open:
            return annotation, Field(knob.default, gt=knob.low, le=knob.high)
        return annotation, Field(knob.default, ge=knob.low, le=knob.high)
    return annotation, Field(knob.default)


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
                if not 1 <= len(layers) <= MAX_LAYERS or any(
                    not 1 <= u <= MAX_UNITS for u in layers
                ):
                    raise ValueError(
                        f"each entry of 'values' must be a list of 1 to {MAX_LAYERS} layer sizes, "
                        f"each between 1 and {MAX_UNITS}"
                    )
            return self
        if self.depth is None or self.units is None:
            raise ValueError("give 'depth' and 'units' ranges, or explicit 'values'")
        if not 1 <= self.depth[0] <= self.depth[1] <= MAX_LAYERS:
            raise ValueError(f"depth must be [low, high] with 1 <= low <= high <= {MAX_LAYERS}")
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
