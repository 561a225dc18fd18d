"""Plot data, shaped on the server as compact arrays (the page draws them with plotly.js).

A study's plots need, per ended trial, its number, state, value and one value per search
axis (:mod:`search.axes`), and per-epoch curves only for the few trials the learning-curve
plot shows. Floats are rounded to 6 significant digits: plenty for a chart, and about half
the bytes of full precision (tables and exports keep full precision).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from search import store
from search.axes import Axis, finite, layers_label, space_axes
from search.spec import ExperimentSpec

CURVE_TOP = 5  # best complete trials whose curves the study page draws
CURVE_PRUNED = 5  # most recently pruned trials drawn with them
STATE_CODES = {store.T_COMPLETE: "C", store.T_PRUNED: "P", store.T_FAIL: "F"}


def rounded(value: Any) -> float | None:
    """A finite number as a float to 6 significant digits; None for anything else (NaN,
    inf, bools, text). Called tens of thousands of times per plot: keep it lean."""
    kind = type(value)
    if kind is float:
        return float(f"{value:.6g}") if value - value == 0.0 else None  # NaN/inf: nan
    if kind is int:
        return float(f"{value:.6g}")
    return None


def _rounded_list(values: Iterable[Any]) -> list[float | None]:
    return [rounded(v) for v in values]


def study_axes(spec: dict[str, Any]) -> list[Axis]:
    return space_axes(ExperimentSpec.model_validate(spec).search.space)


def axes_payload(axes: Sequence[Axis]) -> list[dict[str, Any]]:
    return [
        {
            "name": a.name,
            "knob": a.knob,
            "label": a.label,
            "kind": a.kind,
            "log": a.log,
            "choices": [str(c) for c in a.choices],
        }
        for a in axes
    ]


def points_payload(points: Sequence[store.PlotPoint], axes: Sequence[Axis]) -> dict[str, Any]:
    """Column arrays: number, state code (C/P/F), value, one array per axis, and the layer
    sizes as text for hover labels of layer axes."""
    columns: dict[str, list[Any]] = {}
    for axis in axes:
        knob, read = axis.knob, axis.read
        raw = [p.params.get(knob) for p in points]
        if axis.kind == "categorical":
            columns[axis.name] = [None if v is None else str(read(v)) for v in raw]
        else:
            columns[axis.name] = [None if v is None else rounded(read(v)) for v in raw]
    layer_knobs = {a.knob for a in axes if a.name.endswith((".depth", ".units"))}
    return {
        "number": [p.number for p in points],
        "state": [STATE_CODES.get(p.state, "F") for p in points],
        "value": _rounded_list(p.value for p in points),
        "axes": columns,
        "labels": {k: [layers_label(p.params.get(k)) for p in points] for k in layer_knobs},
    }


def _initial_loss(c: store.TrialCurves) -> float | None:
    if finite(c.initial_loss):
        return c.initial_loss
    train = c.curves.get("train_loss") or []
    return train[0] if train and finite(train[0]) else None


def curves_payload(
    curves: Sequence[store.TrialCurves], *, metric: str, factor: float
) -> list[dict[str, Any]]:
    """Per-trial curves (index = epoch, 0 before any update), the objective's own curve,
    and the divergence threshold ``factor`` x the trial's initial training loss."""
    out = []
    for c in curves:
        initial = _initial_loss(c)
        out.append(
            {
                "number": c.number,
                "state": c.state,
                "value": rounded(c.value),
                "reason": c.reason,
                "train_loss": _rounded_list(c.curves.get("train_loss") or []),
                "dev_loss": _rounded_list(c.curves.get("dev_loss") or []),
                "objective": _rounded_list(c.curves.get(metric) or []),
                "threshold": rounded(factor * initial) if initial is not None else None,
            }
        )
    return out


def to_json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def study_plot_json(
    *,
    study: store.StudyRow,
    points_json: str,
    curves: Sequence[store.TrialCurves],
    cursor: int,
) -> str:
    """The /plots answer (schema ``StudyPlots``) as JSON text around the points' JSON,
    which is the large part and is cached by the caller."""
    factor = float(study.spec["pruning"]["divergence_factor"])
    head = {
        "study_id": study.id,
        "metric": study.metric,
        "direction": study.direction,
        "divergence_factor": factor,
        "axes": axes_payload(study_axes(study.spec)),
        "curves": curves_payload(curves, metric=study.metric, factor=factor),
        "cursor": cursor,
    }
    return to_json(head)[:-1] + ',"points":' + points_json + "}"


def best_so_far(values: Sequence[float | None], direction: str) -> list[float | None]:
    """Running best of ``values`` (None where nothing has finished yet)."""
    better = min if direction == "minimize" else max
    best: float | None = None
    out: list[float | None] = []
    for v in values:
        if v is not None and math.isfinite(v):
            best = v if best is None else better(best, v)
        out.append(best)
    return out


__all__ = [
    "CURVE_PRUNED",
    "CURVE_TOP",
    "axes_payload",
    "best_so_far",
    "curves_payload",
    "points_payload",
    "rounded",
    "study_axes",
    "study_plot_json",
    "to_json",
]
