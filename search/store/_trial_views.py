"""Views of a study's trials for pages and the API: filter, sort, rank, page. Every read
is a query over hps_trials (no Optuna) that leaves the per-epoch curves alone.

A trial's *rank* is its place among the study's COMPLETE trials by the objective (ties by
trial number), the same order as :func:`search.store.leaderboard`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session

from search.initial_loss import initial_loss_off
from search.store._tables import (
    T_COMPLETE,
    T_LOST,
    T_RUNNING,
    StudyRow,
    TrialRow,
)
from search.store._view_spec import (
    COLUMN_SORTS,
    MAX_PAGE,
    OTHER_TASK_METRICS,
    RECORDED_METRICS,
    STATE_FILTERS,
    TrialView,
    ViewError,
    study_metrics,
)


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
    initial_loss: float | None = None
    expected_initial_loss: float | None = None
    stopped_early_at: int | None = None  # early stopping ended it at this epoch
    best_epoch: int | None = None  # the epoch whose weights and metrics it kept
    stack: int | None = None  # trained in a stack: the stack's first trial number

    @property
    def initial_loss_off(self) -> bool:  # far from an untrained network's (search.initial_loss)
        return initial_loss_off(self.initial_loss, self.expected_initial_loss)


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
    TrialRow.seq,
    TrialRow.worker_id,
    TrialRow.initial_loss,
    TrialRow.expected_initial_loss,
    TrialRow.stopped_early_at,
    TrialRow.best_epoch,
    TrialRow.stack,
)
LIVE_STATES = (T_RUNNING, T_LOST)
_CONSISTENT_TRIES = 5


def objective_order(study: StudyRow) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """ORDER BY terms of the ranking: the objective (best first), ties by trial number."""
    value = TrialRow.value.asc() if study.direction == "minimize" else TrialRow.value.desc()
    return value, TrialRow.number.asc()


def _is_ranked(study_id: int) -> ColumnElement[bool]:
    return and_(
        TrialRow.study_id == study_id,
        TrialRow.state == T_COMPLETE,
        TrialRow.value.is_not(None),
        TrialRow.number.is_not(None),
    )


def _cursor(study_id: int) -> Any:
    """The study's change cursor as a scalar subquery: a statement that selects it sees
    the rows and the cursor in one snapshot."""
    return select(StudyRow.change_seq).where(StudyRow.id == study_id).scalar_subquery()


def _top_condition(session: Session, study: StudyRow, top: int) -> ColumnElement[bool]:
    """Trials ranked ``top`` or better, as a condition on the objective (no window)."""
    nth = session.execute(
        select(TrialRow.value, TrialRow.number)
        .where(_is_ranked(study.id))
        .order_by(*objective_order(study))
        .offset(top - 1)
        .limit(1)
    ).first()
    if nth is None:
        return _is_ranked(study.id)
    value, number = nth
    better = TrialRow.value < value if study.direction == "minimize" else TrialRow.value > value
    return and_(
        _is_ranked(study.id),
        or_(better, and_(TrialRow.value == value, TrialRow.number <= number)),
    )


def _where(session: Session, study: StudyRow, view: TrialView) -> list[ColumnElement[bool]]:
    where = [TrialRow.study_id == study.id, TrialRow.number.is_not(None)]
    states = STATE_FILTERS[view.state]
    if states is not None:
        where.append(TrialRow.state.in_(states))
    if view.top is not None:
        where.append(_top_condition(session, study, view.top))
    return where


def _ranks(session: Session, study: StudyRow, numbers: Sequence[int]) -> tuple[dict[int, int], int]:
    """Ranks of the given trials (complete ones only) and the cursor of that snapshot. The
    window runs over the complete trials' index order only, then is cut to ``numbers``."""
    rank = func.row_number().over(order_by=objective_order(study)).label("rank")
    ranked = select(TrialRow.number, rank).where(_is_ranked(study.id)).subquery()
    stmt = select(ranked.c.number, ranked.c.rank, _cursor(study.id).label("cursor")).where(
        ranked.c.number.in_(list(numbers))
    )
    rows = session.execute(stmt).all()
    cursor = rows[0].cursor if rows else current_cursor(session, study.id)
    return {r.number: r.rank for r in rows}, cursor


def current_cursor(session: Session, study_id: int) -> int:
    return int(session.scalar(select(_cursor(study_id))) or 0)


def summaries(
    session: Session, study: StudyRow, numbers: Sequence[int]
) -> tuple[list[TrialSummary], int]:
    """Full rows of the given trials, in the given order, with ranks, and the cursor they
    were read at (retried until the rows, the ranks and the cursor share one snapshot)."""
    if not numbers:
        return [], current_cursor(session, study.id)
    for _ in range(_CONSISTENT_TRIES):
        ranks, rank_cursor = _ranks(session, study, numbers)
        stmt = select(*_SUMMARY_COLUMNS, _cursor(study.id).label("cursor")).where(
            TrialRow.study_id == study.id, TrialRow.number.in_(list(numbers))
        )
        rows = {r.number: r for r in session.execute(stmt)}
        cursor = next(iter(rows.values())).cursor if rows else rank_cursor
        if cursor == rank_cursor:
            break
    out = [_summary(rows[n], ranks.get(n)) for n in numbers if n in rows]
    return out, cursor


def _summary(row: Any, rank: int | None) -> TrialSummary:
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
        rank=rank,
        seq=row.seq,
        worker_id=row.worker_id,
        initial_loss=row.initial_loss,
        expected_initial_loss=row.expected_initial_loss,
        stopped_early_at=row.stopped_early_at,
        best_epoch=row.best_epoch,
        stack=row.stack,
    )


def _sql_order(study: StudyRow, view: TrialView) -> list[Any]:
    if view.sort == "rank":  # ranked trials by rank, then the others by number
        ranked = _is_ranked(study.id)
        value = case((ranked, TrialRow.value), else_=None)
        best_first = value.asc() if study.direction == "minimize" else value.desc()
        worst_first = value.desc() if study.direction == "minimize" else value.asc()
        if view.desc:
            number = case((ranked, TrialRow.number), else_=-TrialRow.number).desc()
            return [case((ranked, 0), else_=1).asc(), worst_first, number]
        return [case((ranked, 0), else_=1).asc(), best_first, TrialRow.number.asc()]
    column: Any = getattr(TrialRow, view.sort)
    order = column.desc() if view.desc else column.asc()
    return [order.nulls_last(), TrialRow.number.asc()]


def _json_sorted_numbers(
    session: Session, where: list[ColumnElement[bool]], view: TrialView
) -> list[int]:
    """Every matching trial's number in ``param:``/``metric:`` order, sorted here: values
    can be numbers, strings or layer-size lists, which SQL cannot order alike."""
    kind, _, name = view.sort.partition(":")
    column = TrialRow.params if kind == "param" else TrialRow.metrics
    value = cast(column[name], Text)  # the one value as JSON text (SQLite and PostgreSQL)
    rows = session.execute(select(TrialRow.number, value).where(*where)).all()
    decoded = json.loads("[" + ",".join(text or "null" for _, text in rows) + "]")
    keyed = [(_key(v), n or 0) for (n, _), v in zip(rows, decoded, strict=True)]
    return _ordered_numbers(keyed, desc=view.desc)


def _ordered_numbers(keyed: list[tuple[Any, int]], *, desc: bool) -> list[int]:
    """Numbers by key (``desc`` reverses), missing keys last, ties by number."""
    present = sorted((kn for kn in keyed if kn[0] is not None), key=lambda kn: kn[1])
    present.sort(key=lambda kn: kn[0], reverse=desc)
    missing = sorted(n for k, n in keyed if k is None)
    return [n for _, n in present] + missing


def count_trials(*, session: Session, study: StudyRow, view: TrialView) -> int:
    """How many trials ``view`` selects (before paging)."""
    where = _where(session, study, view)
    return int(session.scalar(select(func.count()).select_from(TrialRow).where(*where)) or 0)


def list_trials(*, session: Session, study: StudyRow, view: TrialView) -> TrialPage:
    """The trials of ``study`` that ``view`` selects, sorted and paged, with their ranks."""
    where = _where(session, study, view)
    total = int(session.scalar(select(func.count()).select_from(TrialRow).where(*where)) or 0)
    end = None if view.limit is None else view.offset + view.limit
    for _ in range(_CONSISTENT_TRIES):
        if view.sort.partition(":")[0] in ("param", "metric"):
            numbers = _json_sorted_numbers(session, where, view)[view.offset : end]
            page_cursor = None
        else:
            stmt = select(TrialRow.number, _cursor(study.id).label("cursor")).where(*where)
            stmt = stmt.order_by(*_sql_order(study, view)).offset(view.offset)
            result = session.execute(stmt if view.limit is None else stmt.limit(view.limit)).all()
            numbers = [r.number for r in result]
            page_cursor = result[0].cursor if result else None
        rows, cursor = summaries(session, study, numbers)
        if page_cursor is None or page_cursor == cursor:
            break
    return TrialPage(rows=rows, total=total, cursor=cursor if rows else None)


def _key(raw: Any) -> Any:
    """A sort key comparable across value types: numbers < strings < layer-size lists."""
    if raw is None:
        return None
    if isinstance(raw, bool | int | float):
        return (0, float(raw))
    if isinstance(raw, list | tuple):
        return (2, tuple(float(v) for v in raw))
    if isinstance(raw, datetime):
        return (0, raw.timestamp())
    return (1, str(raw))


def sort_key(row: TrialSummary, sort: str) -> Any:
    """The value ``row`` sorts by under ``sort`` (None sorts last), the same order
    :func:`list_trials` uses; pages give it to the live script to place new rows."""
    kind, _, name = sort.partition(":")
    if kind == "param":
        return _key(row.params.get(name))
    if kind == "metric":
        return _key(row.metrics.get(name))
    return _key(getattr(row, sort))


def trial_summaries(
    *, session: Session, study: StudyRow, numbers: Sequence[int]
) -> list[TrialSummary]:
    """The given trials (with their ranks), by number."""
    return summaries(session, study, sorted(numbers))[0]


__all__ = [
    "OTHER_TASK_METRICS",
    "LIVE_STATES",
    "COLUMN_SORTS",
    "MAX_PAGE",
    "RECORDED_METRICS",
    "STATE_FILTERS",
    "TrialPage",
    "TrialSummary",
    "TrialView",
    "ViewError",
    "count_trials",
    "current_cursor",
    "list_trials",
    "objective_order",
    "sort_key",
    "study_metrics",
    "summaries",
    "trial_summaries",
]
