"""Reads shared by the API, the pages and the exports: a study as the API shows it, and the
leaderboard view (which trials: state filter, top N; in which order: any column, a
parameter or a metric; which page) with the table's columns for a study."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from search import store
from search.diagnosis import diagnose
from service.auth import Principal, can_read
from service.errors import BadRequest
from service.own_code import is_own_code
from service.schemas import (
    BestTrial,
    DiagnosisPublic,
    HeldOutPublic,
    SlotCounts,
    SlurmJobPublic,
    StudyPublic,
    TrialCounts,
    WorkerPublic,
)


def visible_workers(
    session: Session, principal: Principal, rows: list[store.WorkerRow]
) -> list[WorkerPublic]:
    """The workers, with the study and trial each is busy with blanked out unless the
    caller may read that study (another user's study ids are not shown)."""
    shown = []
    for row in rows:
        worker = WorkerPublic.model_validate(row)
        study = (
            store.get_study(session=session, study_id=row.study_id)
            if row.study_id is not None
            else None
        )
        if study is None or not can_read(principal, study):
            hidden = {"study_id": None, "trial_number": None, "stack": None}
            worker = worker.model_copy(update=hidden)
        shown.append(worker)
    return shown


def trial_counts(raw: dict[str, int]) -> TrialCounts:
    return TrialCounts(
        running=raw.get(store.T_RUNNING, 0) + raw.get(store.T_LOST, 0),
        complete=raw.get(store.T_COMPLETE, 0),
        pruned=raw.get(store.T_PRUNED, 0),
        fail=raw.get(store.T_FAIL, 0),
    )


@dataclass(frozen=True)
class Progress:
    """How far a study is: attempts by state (``raw``), slots, and whether it is stuck."""

    raw: dict[str, int]
    slots: store.SlotCounts
    waiting: bool


def read_progress(
    session: Session,
    rows: Sequence[store.StudyRow],
    *,
    grace_s: float,
    waiting: bool | None = None,
) -> dict[int, Progress]:
    """Each study's progress (three grouped queries for all of ``rows``); ``waiting``:
    already read, for the one study of ``rows`` (its version was made with it)."""
    ids = [r.id for r in rows]
    raw = store.trial_counts(session=session, study_ids=ids)
    slots = store.slot_counts(session=session, study_ids=ids, attempts=raw)
    stuck = (
        store.studies_waiting(session=session, studies=list(rows), grace_s=grace_s)
        if waiting is None
        else {r.id for r in rows if waiting}
    )
    return {i: Progress(raw[i], slots[i], i in stuck) for i in ids}


def slot_counts(slots: store.SlotCounts) -> SlotCounts:
    return SlotCounts(
        done=slots.done,
        complete=slots.complete,
        pruned=slots.pruned,
        failed=slots.failed,
        running=slots.running,
        lost_retried=slots.lost_retried,
    )


def study_public(
    session: Session,
    row: store.StudyRow,
    *,
    grace_s: float,
    progress: Progress | None = None,
) -> StudyPublic:
    """``row`` with its progress (read now unless given) and best trial."""
    if progress is None:
        progress = read_progress(session, [row], grace_s=grace_s)[row.id]
    top = store.leaderboard(session=session, study=row, top=1)
    best = None
    if top:
        t = top[0].trial
        assert t.number is not None and t.value is not None
        best = BestTrial(
            number=t.number,
            value=t.value,
            params=t.params,
            diagnosis=diagnosis_public(t.metrics),
            initial_loss=t.initial_loss,
            expected_initial_loss=t.expected_initial_loss,
            stopped_early_at=t.stopped_early_at,
            best_epoch=t.best_epoch,
        )
    return StudyPublic.model_validate(
        {
            **{c: getattr(row, c) for c in StudyPublic.model_fields if hasattr(row, c)},
            "counts": trial_counts(progress.raw),
            "slots": slot_counts(progress.slots),
            "waiting": progress.waiting,
            "best": best,
            "test": held_out(row),
            "slurm_job": slurm_job(session, row.id),
        }
    )


def slurm_job(session: Session, study_id: int) -> SlurmJobPublic | None:
    """The study's newest Slurm job, if one was submitted (the study's version covers it)."""
    job = store.newest_slurm_jobs(session=session, study_ids=[study_id]).get(study_id)
    if job is None:
        return None
    return SlurmJobPublic(
        job_id=job.job_id,
        tasks=job.array_size,
        submitted_at=job.submitted_at,
        submitted_by=job.submitted_by,
    )


NO_TEST_SPLIT = "no held-out test set: your own code owns its data and its test"


def held_out(row: store.StudyRow) -> HeldOutPublic:
    """The study's test-set result (``pending`` until a worker has scored the winner;
    ``none`` for the user's own code, which hpsearch never scores)."""
    if is_own_code(row):
        return HeldOutPublic(state=store.TEST_NONE, trial=None, metrics=None, label=NO_TEST_SPLIT)
    state = row.test_state if row.test_state not in (None, store.TEST_CLAIMED) else "pending"
    return HeldOutPublic(state=state, trial=row.test_trial, metrics=row.test_metrics)


def diagnosis_public(metrics: dict[str, Any] | None) -> DiagnosisPublic | None:
    d = diagnose(metrics)
    if d is None:
        return None
    return DiagnosisPublic(
        label=d.label,
        train_error=d.train_error,
        dev_error=d.dev_error,
        baseline_error=d.baseline_error,
        gap=d.gap,
        remedies=list(d.remedies),
    )


def make_view(
    study: store.StudyRow,
    *,
    state: str = "all",
    sort: str = "rank",
    desc: bool = False,
    top: int | None = None,
    offset: int = 0,
    limit: int | None = 50,
) -> store.TrialView:
    """A validated view of ``study``'s trials; bad input is a 422 naming the parameter."""
    try:
        view = store.TrialView(
            state=state,
            sort=sort,
            desc=desc,
            top=top,
            offset=offset,
            limit=limit,
            metrics=store.study_metrics(study),
        )
    except store.ViewError as exc:
        raise BadRequest(exc.field, exc.message) from None
    knobs = list(study.spec["search"]["space"])
    if view.param is not None and view.param not in knobs:
        raise BadRequest(
            "sort",
            f"study {study.id} has no searched parameter {view.param!r}; "
            f"its parameters are {knobs}",
        )
    return view


@dataclass(frozen=True)
class Column:
    """One leaderboard column: ``sort`` is its ``?sort=`` value."""

    sort: str
    label: str
    numeric: bool
    get: Callable[[store.TrialSummary], Any]
    group: str = ""  # "param" | "metric" | "" (for styling)


def _param(name: str) -> Callable[[store.TrialSummary], Any]:
    return lambda t: t.params.get(name)


def _metric(name: str) -> Callable[[store.TrialSummary], Any]:
    return lambda t: t.metrics.get(name)


def metric_columns(study: store.StudyRow) -> list[str]:
    """The metrics a study's table shows beside its objective: those its task records
    (a built-in model), or every other metric its trials reported (the user's own code)."""
    other_task = store.OTHER_TASK_METRICS.get(study.task, ())
    return [m for m in store.study_metrics(study) if m != study.metric and m not in other_task]


FIXED_LABELS = ("rank", "trial", "epochs", "time", "state", "reason")


def table_columns(study: store.StudyRow, *, stacked: bool = False) -> list[Column]:
    """rank, trial, objective, every searched parameter, the other recorded metrics,
    epochs, duration, the stack (``stacked``: some trial of the study trained in one; see
    :func:`study_columns`), state and reason."""
    cols = [
        Column("rank", "rank", True, lambda t: t.rank),
        Column("number", "trial", True, lambda t: t.number),
        Column("value", study.metric, True, lambda t: t.value),
    ]
    knobs = list(study.spec["search"]["space"])
    for knob in knobs:
        cols.append(Column(f"param:{knob}", knob, True, _param(knob), "param"))
    # A reported metric named like another column (the scheduler's lr) says it is one.
    taken = {*knobs, *FIXED_LABELS, *(["stack"] if stacked else [])}
    for metric in metric_columns(study):
        label = f"{metric} (metric)" if metric in taken else metric
        cols.append(Column(f"metric:{metric}", label, True, _metric(metric), "metric"))
    cols += [
        Column("epochs_run", "epochs", True, lambda t: t.epochs_run),
        Column("duration_s", "time", True, lambda t: t.duration_s),
    ]
    if stacked:  # studies that never trained trials together show no empty column
        cols.append(Column("stack", "stack", True, lambda t: t.stack))
    cols += [
        Column("state", "state", False, lambda t: t.state),
        Column("reason", "reason", False, lambda t: t.reason),
    ]
    return cols


def study_columns(session: Session, study: store.StudyRow) -> list[Column]:
    """The study's table columns, with a stack column once a trial trained in a stack."""
    stacked = store.study_has_stacks(session=session, study_id=study.id)
    return table_columns(study, stacked=stacked)


__all__ = [
    "diagnosis_public",
    "held_out",
    "Column",
    "visible_workers",
    "make_view",
    "metric_columns",
    "Progress",
    "read_progress",
    "slot_counts",
    "study_columns",
    "study_public",
    "table_columns",
    "trial_counts",
]
