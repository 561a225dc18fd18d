"""/api/v1/studies/{id}/plots, /importance and /api/v1/compare: plot data shaped on the
server as compact arrays, read from hps_trials (never from Optuna's trials)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import StringConstraints

from search import store
from service.auth import Principal, PrincipalDep, ReadableStudyDep, readable
from service.compute_cache import ComputeCache
from service.deps import ReadSessionDep
from service.errors import BadRequest
from service.plots import (
    CURVE_PRUNED,
    CURVE_TOP,
    best_so_far,
    points_payload,
    rounded,
    study_axes,
    study_plot_json,
    to_json,
)
from service.routes.studies import AUTH, NOT_FOUND
from service.schemas import (
    ComparePublic,
    CompareSeries,
    ParamImportance,
    StudyImportance,
    StudyPlots,
)

router = APIRouter(tags=["plots"], responses=AUTH)
MAX_COMPARE = 8
# One or more ids, comma-separated (spaces allowed around them): at most MAX_COMPARE.
IDS_PATTERN = rf"^ *[0-9]{{1,9}} *(, *[0-9]{{1,9}} *){{0,{MAX_COMPARE - 1}}}$"


@router.get("/studies/{study_id}/plots", response_model=StudyPlots, responses=NOT_FOUND)
def read_plots(row: ReadableStudyDep, session: ReadSessionDep, request: Request) -> Response:
    """Everything the study page draws: per ended trial its number, state, value and one
    value per search axis; the curves of the best, the latest pruned and the running
    trials; and the change cursor to poll ``/changes`` from."""
    cursor = row.change_seq

    def points_json() -> str:  # every ended trial: cached until the next one ends
        points = store.plot_points(session=session, study_id=row.id)
        return to_json(points_payload(points, study_axes(row.spec)))

    cached = _cache(request, "points").get((row.id, cursor), points_json)
    numbers = store.curve_numbers(session=session, study=row, top=CURVE_TOP, pruned=CURVE_PRUNED)
    curves = store.trial_curves(session=session, study_id=row.id, numbers=numbers)
    body = study_plot_json(study=row, points_json=cached, curves=curves, cursor=cursor)
    # Tens of thousands of numbers: sent as built (the shape is StudyPlots, checked by the
    # tests) instead of validated again, which would double the time at 10,000 trials.
    return Response(body, media_type="application/json")


def _cache(request: Request, name: str) -> ComputeCache[Any]:
    """The app's cache called ``name`` (made on first use)."""
    caches: dict[str, ComputeCache[Any]] = request.app.state.caches
    return caches.setdefault(name, ComputeCache())


@router.get("/studies/{study_id}/importance", response_model=StudyImportance, responses=NOT_FOUND)
def read_importance(
    row: ReadableStudyDep, session: ReadSessionDep, request: Request
) -> StudyImportance:
    """Parameter importance (Optuna's PED-ANOVA evaluator) over the complete trials, once at
    least ``min_trials`` have completed; cached per study and number of complete trials."""
    from search.importance import MIN_TRIALS, param_importances  # imports optuna

    complete = store.trial_counts(session=session, study_ids=[row.id])[row.id].get(
        store.T_COMPLETE, 0
    )
    axes = study_axes(row.spec)
    labels = {a.name: a.label for a in axes}

    def compute() -> dict[str, float]:
        points = store.plot_points(session=session, study_id=row.id)
        return param_importances(points, axes, row.direction)

    result = (
        {}
        if complete < MIN_TRIALS
        else _cache(request, "importance").get((row.id, complete), compute)
    )
    data = [
        ParamImportance(axis=name, label=labels.get(name, name), importance=value)
        for name, value in result.items()
    ]
    return StudyImportance(study_id=row.id, complete=complete, min_trials=MIN_TRIALS, data=data)


def parse_ids(raw: list[str]) -> list[int]:
    """``ids=1,2&ids=3`` -> [1, 2, 3]; a 422 naming the bad item otherwise."""
    ids: list[int] = []
    for part in ",".join(raw).split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or len(part) > 9:
            raise BadRequest("ids", f"{part!r} is not a study id")
        if int(part) not in ids:
            ids.append(int(part))
    if not ids:
        raise BadRequest("ids", "give at least one study id, e.g. ids=1,2")
    if len(ids) > MAX_COMPARE:
        raise BadRequest("ids", f"compare at most {MAX_COMPARE} studies, got {len(ids)}")
    return ids


def readable_studies(
    session: ReadSessionDep, principal: Principal, ids: list[int]
) -> list[store.StudyRow]:
    """The studies ``ids`` names, each one the caller may read (else 404 or 401)."""
    return [
        readable(principal, store.get_study(session=session, study_id=i), f"study {i}") for i in ids
    ]


def compare_series(session: ReadSessionDep, rows: list[store.StudyRow]) -> list[CompareSeries]:
    series = []
    for row in rows:
        points = [
            p
            for p in store.plot_points(session=session, study_id=row.id)
            if p.state == store.T_COMPLETE
        ]
        best = best_so_far([p.value for p in points], row.direction)
        series.append(
            CompareSeries(
                study_id=row.id,
                name=row.name,
                metric=row.metric,
                direction=row.direction,
                number=[p.number for p in points],
                best=[rounded(v) for v in best],
            )
        )
    return series


@router.get("/compare", response_model=ComparePublic, responses=NOT_FOUND)
def read_compare(
    session: ReadSessionDep,
    principal: PrincipalDep,
    ids: Annotated[
        list[Annotated[str, StringConstraints(pattern=IDS_PATTERN)]],
        Query(
            min_length=1,
            max_length=MAX_COMPARE,
            description=f"study ids: ids=1,2 or ids=1&ids=2 (at most {MAX_COMPARE} studies)",
        ),
    ],
) -> ComparePublic:
    """Best-so-far curves of several studies (x: trial number, y: best complete value)."""
    rows = readable_studies(session, principal, parse_ids(ids))
    return ComparePublic(data=compare_series(session, rows))
