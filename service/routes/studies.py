"""/api/v1/studies: submit, list, read, leaderboard, trial curves, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from search import store
from search.spec import ExperimentSpec
from service.deps import ReadSessionDep, SessionDep, SessionFactoryDep, SettingsDep
from service.errors import Conflict, NotFound
from service.schemas import (
    BestTrial,
    ErrorPublic,
    LeaderboardPublic,
    LeaderboardRow,
    StudiesPublic,
    StudyPublic,
    TrialCounts,
    TrialPublic,
)

router = APIRouter(prefix="/studies", tags=["studies"])
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"model": ErrorPublic, "description": "No such study or trial"}}
CONFLICT: Responses = {409: {"model": ErrorPublic, "description": "Conflicts with its state"}}
MAX_OFFSET = 2**31 - 1  # larger offsets overflow the databases' integers
StudyId = Annotated[int, Path(ge=0, le=2**31 - 1, description="study id")]
TrialNumber = Annotated[int, Path(ge=0, le=2**31 - 1, description="trial number in the study")]


def _counts(raw: dict[str, int]) -> TrialCounts:
    return TrialCounts(
        running=raw.get(store.T_RUNNING, 0) + raw.get(store.T_LOST, 0),
        complete=raw.get(store.T_COMPLETE, 0),
        pruned=raw.get(store.T_PRUNED, 0),
        fail=raw.get(store.T_FAIL, 0),
    )


def _public(session: Session, row: store.StudyRow, raw_counts: dict[str, int]) -> StudyPublic:
    top = store.leaderboard(session=session, study=row, top=1)
    best = None
    if top:
        t = top[0].trial
        assert t.number is not None and t.value is not None
        best = BestTrial(number=t.number, value=t.value, params=t.params)
    return StudyPublic.model_validate(
        {
            **{c: getattr(row, c) for c in StudyPublic.model_fields if hasattr(row, c)},
            "counts": _counts(raw_counts),
            "best": best,
        }
    )


def _get_or_404(session: Session, study_id: int) -> store.StudyRow:
    row = store.get_study(session=session, study_id=study_id)
    if row is None:
        raise NotFound(f"study {study_id} not found")
    return row


@router.post(
    "",
    response_model=StudyPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"model": ErrorPublic, "description": "The body could not be decoded"},
        409: {"model": ErrorPublic, "description": "Idempotency-Key used for another spec"},
    },
)
def create_study(
    spec: ExperimentSpec,
    session: SessionDep,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=64,
            description="Retrying a submission with the same key returns the study it created.",
        ),
    ] = None,
) -> StudyPublic:
    from search.size import SpecTooLarge
    from search.studies import RequestKeyReused
    from search.studies import create_study as create  # imports optuna

    try:
        row = create(
            session_factory=factory,
            storage_url=settings.database_url,
            spec=spec,
            request_key=idempotency_key,
            max_params=settings.max_params,
        )
    except SpecTooLarge as exc:
        loc = ("body", *exc.field.split("."))
        raise RequestValidationError(
            [{"loc": loc, "msg": str(exc), "type": "value_error"}]
        ) from None
    except RequestKeyReused as exc:
        raise Conflict(str(exc)) from None
    counts = store.trial_counts(session=session, study_ids=[row.id])
    return _public(session, _get_or_404(session, row.id), counts[row.id])


@router.get("", response_model=StudiesPublic)
def list_studies(
    session: ReadSessionDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> StudiesPublic:
    rows, count = store.list_studies(session=session, offset=offset, limit=limit)
    counts = store.trial_counts(session=session, study_ids=[r.id for r in rows])
    return StudiesPublic(data=[_public(session, r, counts[r.id]) for r in rows], count=count)


@router.get("/{study_id}", response_model=StudyPublic, responses=NOT_FOUND)
def read_study(study_id: StudyId, session: ReadSessionDep) -> StudyPublic:
    row = _get_or_404(session, study_id)
    counts = store.trial_counts(session=session, study_ids=[study_id])
    return _public(session, row, counts[study_id])


@router.get("/{study_id}/leaderboard", response_model=LeaderboardPublic, responses=NOT_FOUND)
def read_leaderboard(
    study_id: StudyId, session: ReadSessionDep, top: Annotated[int, Query(ge=1, le=1000)] = 10
) -> LeaderboardPublic:
    row = _get_or_404(session, study_id)
    entries = store.leaderboard(session=session, study=row, top=top)
    data = [
        LeaderboardRow(
            rank=e.rank,
            number=e.trial.number,
            state=e.trial.state,
            value=e.trial.value,
            params=e.trial.params,
            metrics=e.trial.metrics,
            epochs_run=e.trial.epochs_run,
            duration_s=e.trial.duration_s,
        )
        for e in entries
    ]
    return LeaderboardPublic(study_id=row.id, metric=row.metric, direction=row.direction, data=data)


@router.get("/{study_id}/trials/{number}", response_model=TrialPublic, responses=NOT_FOUND)
def read_trial(study_id: StudyId, number: TrialNumber, session: ReadSessionDep) -> TrialPublic:
    _get_or_404(session, study_id)
    trial = store.get_trial(session=session, study_id=study_id, number=number)
    if trial is None:
        raise NotFound(f"trial {number} of study {study_id} not found")
    return TrialPublic.model_validate(
        {
            **{c: getattr(trial, c) for c in TrialPublic.model_fields if hasattr(trial, c)},
            "prune_reason": trial.reason,
        }
    )


@router.post("/{study_id}/cancel", response_model=StudyPublic, responses=NOT_FOUND | CONFLICT)
def cancel_study(study_id: StudyId, session: SessionDep) -> StudyPublic:
    row = _get_or_404(session, study_id)
    if not store.cancel_study(session=session, study_id=study_id):
        raise Conflict(f"study {study_id} is already {row.status}")
    session.commit()
    session.refresh(row)
    return read_study(study_id, session)
