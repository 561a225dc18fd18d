"""Views of a study's trials for pages and the API: filter, sort, rank, page, and the
changes since a cursor. Every read is a query over hps_trials (no Optuna), and none loads
the per-epoch curves except :func:`trial_curves`, for the few trials a plot shows.

A trial's *rank* is its place among the study's COMPLETE trials by the objective (ties by
trial number), the same order as :func:`search.store.leaderboard`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from search.store._tables import (
    T_COMPLETE,
    T_FAIL,
    T_LOST,
    T_PRUNED,
    T_RUNNING,
    StudyRow,
    TrialRow,
)

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
    "started_at",
    "finished_at",
)
# Metrics a trial records (hps_trials.metrics keys), in display order.
RECORDED_METRICS = ("train_loss", "dev_loss", "dev_accuracy", "initial_loss")
MAX_PAGE = 10000
_NAME = re.compile(r"[A-Za-z0-9_.]{1,64}")


@dataclass(frozen=True)
class TrialView:
    """What part of a study's trials to show, in which order. Invalid values raise
    ``ValueError`` naming the field (the API turns it into a 422)."""

    state: str = "all"
    sort: str = "rank"
    desc: bool = False
    top: int | None = None  # only the best N by the objective
    offset: int = 0
    limit: int | None = 50  # None: every matching trial

    def __post_init__(self) -> None:
        if self.state not in STATE_FILTERS:
            raise ValueError(f"state must be one of {list(STATE_FILTERS)}, got {self.state!r}")
        kind, _, name = self.sort.partition(":")
        json_sort = kind in ("param", "metric") and _NAME.fullmatch(name)
        if not (self.sort in COLUMN_SORTS or json_sort):
            raise ValueError(
                f"sort must be one of {list(COLUMN_SORTS)}, param:NAME or metric:NAME, "
                f"got {self.sort!r}"
            )
        if kind == "metric" and name not in RECORDED_METRICS:
            raise ValueError(f"sort: unknown metric {name!r}; metrics are {list(RECORDED_METRICS)}")
        if self.top is not None and not 1 <= self.top <= MAX_PAGE:
            raise ValueError(f"top must be between 1 and {MAX_PAGE}, got {self.top}")
        if not 0 <= self.offset <= 10**9:
            raise ValueError(f"offset must be >= 0, got {self.offset}")
        if self.limit is not None and not 1 <= self.limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}, got {self.limit}")

    @property
    def param(self) -> str | None:
        kind, _, name = self.sort.partition(":")
        return name if kind == "param" else None


@dataclass(frozen=True)
class TrialSummary:
    """One trial as tables show it: everything but the per-epoch curves."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    epochs_run: int
    duration_s: float | None
    reason: str | None
    started_at: datetime
    finished_at: datetime | None
    rank: int | None
    seq: int | None
    worker_id: int | None


@dataclass(frozen=True)
class TrialPage:
    rows: list[TrialSummary]
    total: int  # trials matching the view's filters, before offset/limit
    # The study's change cursor in the same snapshot as ``rows`` (None without rows): a
    # live page that polls from it sees exactly the trials that ended after these rows.
    cursor: int | None = None


_SUMMARY_COLUMNS = (
    TrialRow.number,
    TrialRow.state,
    TrialRow.value,
    TrialRow.params,
    TrialRow.metrics,
    TrialRow.epochs_run,
    TrialRow.duration_s,
    TrialRow.reason,
    TrialRow.started_at,
    TrialRow.finished_at,
)


def _objective_order(study: StudyRow) -> ColumnElement[Any]:
    return TrialRow.value.asc() if study.direction == "minimize" else TrialRow.value.desc()


def _ranked(study: StudyRow) -> Any:
    """Subquery (id, rank) over the study's COMPLETE trials."""
    rank = func.row_number().over(order_by=(_objective_order(study), TrialRow.number.asc()))
    return (
        select(TrialRow.id.label("id"), rank.label("rank"))
        .where(
            TrialRow.study_id == study.id,
            TrialRow.state == T_COMPLETE,
            TrialRow.value.is_not(None),
            TrialRow.number.is_not(None),
        )
        .subquery("ranked")
    )


def _select(study: StudyRow, view: TrialView, numbers: Sequence[int] | None = None) -> Any:
    ranked = _ranked(study)
    cursor = select(StudyRow.change_seq).where(StudyRow.id == study.id).scalar_subquery()
    stmt: Select[Any] = (
        select(
            *_SUMMARY_COLUMNS,
            ranked.c.rank,
            TrialRow.seq,
            TrialRow.worker_id,
            cursor.label("cursor"),
        )
        .outerjoin(ranked, ranked.c.id == TrialRow.id)
        .where(TrialRow.study_id == study.id, TrialRow.number.is_not(None))
    )
    states = STATE_FILTERS[view.state]
    if states is not None:
        stmt = stmt.where(TrialRow.state.in_(states))
    if view.top is not None:
        stmt = stmt.where(ranked.c.rank <= view.top)
    if numbers is not None:
        stmt = stmt.where(TrialRow.number.in_(list(numbers)))
    return stmt, ranked


def _summary(row: Any) -> TrialSummary:
    return TrialSummary(
        number=row.number,
        state=row.state,
        value=row.value,
        params=row.params or {},
        metrics=row.metrics or {},
        epochs_run=row.epochs_run,
        duration_s=row.duration_s,
        reason=row.reason,
        started_at=row.started_at,
        finished_at=row.finished_at,
        rank=row.rank,
        seq=row.seq,
        worker_id=row.worker_id,
    )


def list_trials(*, session: Session, study: StudyRow, view: TrialView) -> TrialPage:
    """The trials of ``study`` that ``view`` selects, sorted and paged."""
    stmt, ranked = _select(study, view)
    total = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    kind, _, name = view.sort.partition(":")
    if kind in ("param", "metric"):
        result = session.execute(stmt).all()
        rows = sort_summaries([_summary(r) for r in result], view.sort, desc=view.desc)
        end = None if view.limit is None else view.offset + view.limit
        cursor = result[0].cursor if result else None
        return TrialPage(rows=rows[view.offset : end], total=total, cursor=cursor)
    column: Any = ranked.c.rank if view.sort == "rank" else getattr(TrialRow, view.sort)
    order = column.desc() if view.desc else column.asc()
    stmt = stmt.order_by(order.nulls_last(), TrialRow.number.asc()).offset(view.offset)
    if view.limit is not None:
        stmt = stmt.limit(view.limit)
    result = session.execute(stmt).all()
    cursor = result[0].cursor if result else None
    return TrialPage(rows=[_summary(r) for r in result], total=total, cursor=cursor)


def sort_key(row: TrialSummary, sort: str) -> Any:
    """The value ``row`` sorts by under ``sort`` (None sorts last), comparable across rows
    of any parameter type: numbers < strings < layer-size lists."""
    kind, _, name = sort.partition(":")
    if kind == "param":
        raw = row.params.get(name)
    elif kind == "metric":
        raw = row.metrics.get(name)
    else:
        raw = getattr(row, sort)
    if raw is None:
        return None
    if isinstance(raw, bool | int | float):
        return (0, float(raw))
    if isinstance(raw, list | tuple):
        return (2, tuple(float(v) for v in raw))
    if isinstance(raw, datetime):
        return (0, raw.timestamp())
    return (1, str(raw))


def sort_summaries(rows: list[TrialSummary], sort: str, *, desc: bool) -> list[TrialSummary]:
    """Rows in ``sort`` order (``desc`` reverses it), missing values last, ties by number."""
    keyed = [(sort_key(r, sort), r) for r in rows]
    present = sorted((kr for kr in keyed if kr[0] is not None), key=lambda kr: kr[1].number)
    present.sort(key=lambda kr: kr[0], reverse=desc)
    missing = sorted((r for k, r in keyed if k is None), key=lambda r: r.number)
    return [r for _, r in present] + missing


def trial_summaries(
    *, session: Session, study: StudyRow, numbers: Sequence[int]
) -> list[TrialSummary]:
    """The given trials (with their ranks), by number."""
    if not numbers:
        return []
    stmt, _ = _select(study, TrialView(limit=None), numbers)
    return [_summary(r) for r in session.execute(stmt.order_by(TrialRow.number))]


@dataclass(frozen=True)
class Changes:
    finished: list[TrialSummary]  # trials that ended after the cursor, in the order they ended
    running: list[TrialSummary]  # every trial still running
    cursor: int  # pass back to get only what changes after this call


def changes_since(*, session: Session, study: StudyRow, cursor: int) -> Changes:
    """What a live page needs after ``cursor``: trials ended since, and the running ones.

    Exact and clock-free: a trial's end takes the study's next change number under the
    study row's lock (:func:`search.store.finish_trial`), so numbers commit in order."""
    stmt, _ = _select(study, TrialView(limit=None))
    finished = [
        _summary(r)
        for r in session.execute(
            stmt.where(TrialRow.seq > cursor, TrialRow.state.not_in((T_RUNNING, T_LOST))).order_by(
                TrialRow.seq
            )
        )
    ]
    running = [
        _summary(r)
        for r in session.execute(
            stmt.where(TrialRow.state.in_((T_RUNNING, T_LOST))).order_by(TrialRow.number)
        )
    ]
    last = max((t.seq for t in finished if t.seq is not None), default=cursor)
    return Changes(finished=finished, running=running, cursor=max(cursor, last))


@dataclass(frozen=True)
class PlotPoint:
    number: int
    state: str
    value: float | None
    params: dict[str, Any]


def plot_points(*, session: Session, study_id: int) -> list[PlotPoint]:
    """Every ended trial's number, state, value and parameters, by number: the compact
    columns the history, parameter and parallel-coordinate plots are drawn from."""
    stmt = (
        select(TrialRow.number, TrialRow.state, TrialRow.value, TrialRow.params)
        .where(
            TrialRow.study_id == study_id,
            TrialRow.number.is_not(None),
            TrialRow.state.in_((T_COMPLETE, T_PRUNED, T_FAIL)),
        )
        .order_by(TrialRow.number)
    )
    return [PlotPoint(r.number, r.state, r.value, r.params or {}) for r in session.execute(stmt)]


@dataclass(frozen=True)
class TrialCurves:
    number: int
    state: str
    value: float | None
    curves: dict[str, Any]
    initial_loss: float | None
    reason: str | None


def curve_numbers(*, session: Session, study: StudyRow, top: int, pruned: int) -> list[int]:
    """Trials whose learning curves a study page draws: the ``top`` best complete ones,
    the ``pruned`` most recently pruned, and every running one."""
    best = select(TrialRow.number).where(
        TrialRow.study_id == study.id,
        TrialRow.state == T_COMPLETE,
        TrialRow.value.is_not(None),
        TrialRow.number.is_not(None),
    )
    best = best.order_by(_objective_order(study), TrialRow.number).limit(top)
    cut = (
        select(TrialRow.number)
        .where(TrialRow.study_id == study.id, TrialRow.state == T_PRUNED)
        .order_by(TrialRow.seq.desc().nulls_last(), TrialRow.number.desc())
        .limit(pruned)
    )
    running = select(TrialRow.number).where(
        TrialRow.study_id == study.id,
        TrialRow.state.in_((T_RUNNING, T_LOST)),
        TrialRow.number.is_not(None),
    )
    numbers: list[int] = []
    for stmt in (best, cut, running):
        numbers += [n for n in session.scalars(stmt) if n is not None]
    return list(dict.fromkeys(numbers))


def trial_curves(*, session: Session, study_id: int, numbers: Sequence[int]) -> list[TrialCurves]:
    """Per-epoch curves of the given trials (train/dev loss, dev accuracy; index 0 is the
    loss before any update)."""
    if not numbers:
        return []
    stmt = (
        select(
            TrialRow.number,
            TrialRow.state,
            TrialRow.value,
            TrialRow.curves,
            TrialRow.metrics,
            TrialRow.reason,
        )
        .where(TrialRow.study_id == study_id, TrialRow.number.in_(list(numbers)))
        .order_by(TrialRow.number)
    )
    return [
        TrialCurves(
            number=r.number,
            state=r.state,
            value=r.value,
            curves=r.curves or {},
            initial_loss=(r.metrics or {}).get("initial_loss"),
            reason=r.reason,
        )
        for r in session.execute(stmt)
    ]


__all__ = [
    "COLUMN_SORTS",
    "MAX_PAGE",
    "RECORDED_METRICS",
    "STATE_FILTERS",
    "Changes",
    "PlotPoint",
    "TrialCurves",
    "TrialPage",
    "TrialSummary",
    "TrialView",
    "changes_since",
    "curve_numbers",
    "list_trials",
    "plot_points",
    "sort_key",
    "sort_summaries",
    "trial_curves",
    "trial_summaries",
]
