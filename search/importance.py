"""Parameter importance from the compact hps_trials table, with Optuna's evaluator.

Optuna's evaluators read a study; loading every Optuna trial of a 10,000-trial study from
its RDB storage takes seconds, so the COMPLETE trials' axis values (:mod:`search.axes`) are
turned into frozen trials of an in-memory study instead, and the default evaluator
(PED-ANOVA) runs on that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from search.axes import Axis, finite
from search.store import T_COMPLETE, PlotPoint

optuna.logging.set_verbosity(optuna.logging.WARNING)
MIN_TRIALS = 10  # fewer complete trials than this say nothing about importance


def _distribution(axis: Axis, values: list[Any]) -> BaseDistribution:
    if axis.kind == "categorical":
        return CategoricalDistribution(list(dict.fromkeys([*axis.choices, *values])))
    assert axis.low is not None and axis.high is not None
    low, high = min([axis.low, *values]), max([axis.high, *values])
    if axis.kind == "int":
        return IntDistribution(int(low), int(high))
    log = axis.log and low > 0
    return FloatDistribution(float(low), float(high), log=log)


def param_importances(
    points: Sequence[PlotPoint], axes: Sequence[Axis], direction: str
) -> dict[str, float]:
    """Importance of each axis (normalised to sum to 1, largest first) over the COMPLETE
    trials; empty when fewer than :data:`MIN_TRIALS` have finished or fewer than two axes
    vary."""
    complete = [p for p in points if p.state == T_COMPLETE and finite(p.value)]
    if len(complete) < MIN_TRIALS or len(axes) < 2:
        return {}
    columns = {a.name: [a.value(p.params) for p in complete] for a in axes}
    usable = [a for a in axes if all(v is not None for v in columns[a.name])]
    if len(usable) < 2:
        return {}
    dists = {a.name: _distribution(a, columns[a.name]) for a in usable}
    trials = [
        optuna.trial.create_trial(
            params={a.name: columns[a.name][i] for a in usable},
            distributions=dists,
            value=float(p.value),  # type: ignore[arg-type]
        )
        for i, p in enumerate(complete)
    ]
    study = optuna.create_study(
        direction=optuna.study.StudyDirection.MAXIMIZE
        if direction == "maximize"
        else optuna.study.StudyDirection.MINIMIZE
    )
    study.add_trials(trials)
    result = optuna.importance.get_param_importances(study)
    return {name: float(v) if math.isfinite(v) else 0.0 for name, v in result.items()}


__all__ = ["MIN_TRIALS", "param_importances"]
