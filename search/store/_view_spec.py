"""What a view of a study's trials asks for: which trials (state filter, top N), in which
order (a column, ``param:NAME`` or ``metric:NAME``) and which page, validated at
construction. :mod:`search.store._trial_views` reads it.

The metrics a view may sort by are the study's own: the ones the built-in trainer records,
or for a study of the user's own code (``model: external``) its objective and every metric
its ended trials reported (``hps_studies.metric_names``), see :func:`study_metrics`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from search._external import EXTERNAL
from search.store._tables import T_COMPLETE, T_FAIL, T_LOST, T_PRUNED, T_RUNNING, StudyRow

# The state filters a user can pick, in the order pages offer them.
STATE_FILTERS: dict[str, tuple[str, ...] | None] = {
    "all": None,
    "complete": (T_COMPLETE,),
    "pruned": (T_PRUNED,),
    "failed": (T_FAIL,),
    "running": (T_RUNNING, T_LOST),
}
# Sortable columns of hps_trials; params and metrics sort as ``param:NAME`` / ``metric:NAME``.
COLUMN_SORTS = (
    "rank",
    "number",
    "value",
    "state",
    "epochs_run",
    "duration_s",
    "reason",
    "stack",
    "started_at",
    "finished_at",
)
# Metrics a trial of a built-in model records (hps_trials.metrics keys), in display order.
RECORDED_METRICS = (
    "train_loss",
    "dev_loss",
    "dev_accuracy",
    "dev_rmse",
    "dev_r2",
    "train_error",
    "initial_loss",
)
# Recorded metrics a study of each task has no values for.
OTHER_TASK_METRICS = {
    "classification": ("dev_rmse", "dev_r2"),
    "regression": ("dev_accuracy",),
}
MAX_PAGE = 10000
_NAME = re.compile(r"[A-Za-z0-9_.]{1,64}")


def study_metrics(study: StudyRow) -> tuple[str, ...]:
    """The metrics ``study``'s trials record, in display order: a built-in model's
    :data:`RECORDED_METRICS`; for the user's own code, its objective, then every other
    metric its ended trials reported, in the order first seen."""
    if study.model != EXTERNAL:
        return RECORDED_METRICS
    return tuple(dict.fromkeys([study.metric, *(study.metric_names or [])]))


class ViewError(ValueError):
    """A view parameter is invalid: ``field`` names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class TrialView:
    """What part of a study's trials to show, in which order. Invalid values raise
    ``ValueError`` naming the field (the API turns it into a 422). ``metrics``: the
    metric names ``metric:NAME`` may sort by (the study's, :func:`study_metrics`)."""

    state: str = "all"
    sort: str = "rank"
    desc: bool = False
    top: int | None = None  # only the best N by the objective
    offset: int = 0
    limit: int | None = 50  # None: every matching trial
    metrics: tuple[str, ...] = RECORDED_METRICS

    def __post_init__(self) -> None:
        if self.state not in STATE_FILTERS:
            raise ViewError("state", f"must be one of {list(STATE_FILTERS)}, got {self.state!r}")
        self._check_sort()
        if self.top is not None and not 1 <= self.top <= MAX_PAGE:
            raise ViewError("top", f"must be between 1 and {MAX_PAGE}, got {self.top}")
        if not 0 <= self.offset <= 10**9:
            raise ViewError("offset", f"must be >= 0, got {self.offset}")
        if self.limit is not None and not 1 <= self.limit <= MAX_PAGE:
            raise ViewError("limit", f"must be between 1 and {MAX_PAGE}, got {self.limit}")

    def _check_sort(self) -> None:
        kind, _, name = self.sort.partition(":")
        json_sort = kind in ("param", "metric") and _NAME.fullmatch(name)
        if not (self.sort in COLUMN_SORTS or json_sort):
            raise ViewError(
                "sort",
                f"must be one of {list(COLUMN_SORTS)}, param:NAME or metric:NAME, "
                f"got {self.sort!r}",
            )
        if kind == "metric" and name not in self.metrics:
            raise ViewError("sort", f"unknown metric {name!r}; metrics are {list(self.metrics)}")

    @property
    def param(self) -> str | None:
        kind, _, name = self.sort.partition(":")
        return name if kind == "param" else None


__all__ = [
    "COLUMN_SORTS",
    "MAX_PAGE",
    "OTHER_TASK_METRICS",
    "RECORDED_METRICS",
    "STATE_FILTERS",
    "TrialView",
    "ViewError",
    "study_metrics",
]
