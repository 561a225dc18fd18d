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
from dataclasses import dataclass
from typing import Any

from search import store
from search.axes import Axis, finite, layers_label, space_axes
from search.spec import DEFAULT_LOSS_METRIC, ExperimentSpec
from service.own_code import is_own_code

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


@dataclass(frozen=True)
class CurveNames:
    """Which stored curves a study's learning-curve plot draws: the objective (left), the
    loss the divergence rule watches (right, solid) and a built-in model's dev loss (right,
    dotted). ``by_epoch``: the curves carry their own ``epoch`` list (the user's own code,
    whose reports may skip epochs); a built-in model's hold one value per epoch from 0."""

    metric: str
    loss: str
    dev_loss: str | None
    factor: float
    by_epoch: bool

    @property
    def limit_text(self) -> str:
        """What the dashed divergence limit is, in words."""
        first = f"first reported {self.loss}" if self.by_epoch else "initial loss"
        return f"{self.factor} × {first}"


def curve_names(study: store.StudyRow) -> CurveNames:
    pruning = study.spec["pruning"]
    factor = float(pruning["divergence_factor"])
    if is_own_code(study):
        loss = pruning.get("loss_metric") or DEFAULT_LOSS_METRIC
        return CurveNames(study.metric, loss, None, factor, by_epoch=True)
    return CurveNames(study.metric, "train_loss", "dev_loss", factor, by_epoch=False)


def _initial_loss(c: store.TrialCurves, names: CurveNames) -> float | None:
    """The loss the divergence limit is a multiple of: the untrained network's (a built-in
    model), or the first value the user's code reported."""
    if names.by_epoch:
        return next((v for v in c.curves.get(names.loss) or [] if finite(v)), None)
    if finite(c.initial_loss):
        return c.initial_loss
    train = c.curves.get("train_loss") or []
    return train[0] if train and finite(train[0]) else None


def curves_payload(
    curves: Sequence[store.TrialCurves], names: CurveNames, *, others: bool = False
) -> list[dict[str, Any]]:
    """Per-trial curves: the objective's, the watched loss as ``train_loss`` (and the dev
    loss), the divergence threshold ``factor`` x the trial's initial loss, and with
    ``by_epoch`` the ``epoch`` each value belongs to (else index = epoch, 0 before any
    update). ``others``: every other stored curve too, by name (a trial's own page)."""
    out = []
    for c in curves:
        initial = _initial_loss(c, names)
        item = {
            "number": c.number,
            "state": c.state,
            "value": rounded(c.value),
            "reason": c.reason,
            "train_loss": _rounded_list(c.curves.get(names.loss) or []),
            "dev_loss": _rounded_list(c.curves.get(names.dev_loss or "") or []),
            "objective": _rounded_list(c.curves.get(names.metric) or []),
            "threshold": rounded(names.factor * initial) if initial is not None else None,
        }
        if names.by_epoch:
            item["epoch"] = list(c.curves.get("epoch") or [])
        if others:
            item["others"] = _other_curves(c, names)
        out.append(item)
    return out


def _other_curves(c: store.TrialCurves, names: CurveNames) -> dict[str, list[float | None]]:
    """Every stored curve the learning-curve plot does not draw and that has a value."""
    drawn = {"epoch", names.metric, names.loss, names.dev_loss}
    shown = {k: _rounded_list(v) for k, v in c.curves.items() if k not in drawn}
    return {k: v for k, v in shown.items() if any(x is not None for x in v)}


def curves_head(names: CurveNames) -> dict[str, Any]:
    """What a learning-curve plot says about its study: the objective, and (the user's own
    code) the name of the loss on the right."""
    head: dict[str, Any] = {"metric": names.metric}
    if names.by_epoch:
        head["loss_metric"] = names.loss
    return head


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
    names = curve_names(study)
    head = {
        "study_id": study.id,
        **curves_head(names),
        "direction": study.direction,
        "divergence_factor": names.factor,
        "axes": axes_payload(study_axes(study.spec)),
        "curves": curves_payload(curves, names),
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
    "CurveNames",
    "axes_payload",
    "best_so_far",
    "curve_names",
    "curves_head",
    "curves_payload",
    "points_payload",
    "rounded",
    "study_axes",
    "study_plot_json",
    "to_json",
]
