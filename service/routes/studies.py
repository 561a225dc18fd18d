"""/api/v1/studies: submit, list, read, leaderboard, trials (JSON and CSV), changes since a
cursor, one trial, the best trial's model file, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.orm import Session

from search import store
from search.spec import ExperimentSpec
from service.auth import (
    OwnedStudyDep,
    PrincipalDep,
    ReadableStudyDep,
    SignedInDep,
    listed_studies,
    owner_filter,
)
from service.deps import (
    ReadSessionDep,
    SessionDep,
    SessionFactoryDep,
    SettingsDep,
    StudyId,
    TrialNumber,
)
from service.errors import Conflict, NotFound
from service.export import trials_csv
from service.own_code import is_own_code
from service.read_cache import StudyReadsDep
from service.schemas import (
    ErrorPublic,
    LeaderboardPublic,
    LeaderboardRow,
    StudiesPublic,
    StudyChanges,
    StudyPublic,
    StudyUpdate,
    TrialPublic,
    TrialsPublic,
    TrialSummaryPublic,
)
from service.views import (
    diagnosis_public,
    held_out,
    make_view,
    read_progress,
    study_columns,
    study_public,
)

Responses = dict[int | str, dict[str, Any]]
AUTH: Responses = {
    401: {"model": ErrorPublic, "description": "No API key, or a wrong or revoked one"},
    403: {"model": ErrorPublic, "description": "A cross-site request or a missing CSRF token"},
    413: {"model": ErrorPublic, "description": "The request body is too large"},
}
router = APIRouter(prefix="/studies", tags=["studies"], responses=AUTH)
NOT_FOUND: Responses = {
    404: {"model": ErrorPublic, "description": "No such study or trial (or not yours)"}
}
UNDECODABLE: Responses = {
    400: {"model": ErrorPublic, "description": "The body could not be decoded"}
}
VERSIONED: Responses = {
    304: {"description": "Not modified: the study's version is the If-None-Match sent"},
    **NOT_FOUND,
}
CONFLICT: Responses = {409: {"model": ErrorPublic, "description": "Conflicts with its state"}}
CSV_OK: Responses = {200: {"content": {"text/csv": {}}, "description": "The trials as CSV"}}
MAX_OFFSET = 2**31 - 1  # larger offsets overflow the databases' integers
StateQuery = Annotated[
    str, Query(description="all | complete | pruned | failed | running", max_length=16)
]
SortQuery = Annotated[
    str,
    Query(
        description="rank | number | value | state | epochs_run | duration_s | reason | "
        "started_at | finished_at | param:NAME | metric:NAME",
        max_length=80,
    ),
]
DescQuery = Annotated[bool, Query(description="sort descending")]
TopQuery = Annotated[
    int | None, Query(ge=1, le=store.MAX_PAGE, description="only the best N trials")
]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_OFFSET)]


@router.post(
    "",
    response_model=StudyPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        **UNDECODABLE,
        409: {"model": ErrorPublic, "description": "Idempotency-Key used for another spec"},
    },
)
def create_study(
    request: Request,
    spec: ExperimentSpec,
    principal: SignedInDep,
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
    from search.studies import RequestKeyReused, UnknownDataset
    from search.studies import create_study as create  # imports optuna

    try:
        row = create(
            session_factory=factory,
            storage_url=settings.database_url,
            spec=spec,
            request_key=idempotency_key,
            max_params=settings.max_params,
            max_trials=settings.max_trials,
            max_epochs=settings.max_epochs,
            owner=principal.user,
            datasets_of=owner_filter(principal),
        )
    except SpecTooLarge as exc:
        loc = ("body", *exc.field.split("."))
        raise RequestValidationError(
            [{"loc": loc, "msg": str(exc), "type": "value_error"}]
        ) from None
    except UnknownDataset as exc:
        loc = ("body", *exc.field.split("."))
        raise RequestValidationError(
            [{"loc": loc, "msg": exc.message, "type": "value_error"}]
        ) from None
    except RequestKeyReused as exc:
        raise Conflict(str(exc)) from None
    if request.app.state.on_submit is not None:
        request.app.state.on_submit()
    created = store.get_study(session=session, study_id=row.id)
    assert created is not None
    return study_public(session, created, grace_s=settings.grace_period)


@router.get("", response_model=StudiesPublic)
def list_studies(
    principal: PrincipalDep,
    session: ReadSessionDep,
    settings: SettingsDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> StudiesPublic:
    """The studies the caller may read, newest first: their own and the public ones (an
    admin's: everyone's; no key: the public ones); each says its ``owner`` and ``public``."""
    owner, public = listed_studies(principal)
    rows, count = store.list_studies(
        session=session, offset=offset, limit=limit, owner=owner, public=public
    )
    grace_s = settings.grace_period
    progress = read_progress(session, rows, grace_s=grace_s)
    data = [study_public(session, r, grace_s=grace_s, progress=progress[r.id]) for r in rows]
    return StudiesPublic(data=data, count=count)


@router.get("/{study_id}", response_model=StudyPublic, responses=VERSIONED)
async def read_study(reads: StudyReadsDep) -> Response:
    return await reads.json(lambda: reads.summary()[1])


@router.patch("/{study_id}", response_model=StudyPublic, responses=NOT_FOUND | UNDECODABLE)
def update_study(
    update: StudyUpdate, row: OwnedStudyDep, session: SessionDep, settings: SettingsDep
) -> StudyPublic:
    """Make a study public (its reads and pages then work without a key) or private."""
    store.set_public(session=session, study_id=row.id, public=update.public)
    session.commit()
    session.refresh(row)
    return study_public(session, row, grace_s=settings.grace_period)


@router.get("/{study_id}/leaderboard", response_model=LeaderboardPublic, responses=VERSIONED)
async def read_leaderboard(
    reads: StudyReadsDep, top: Annotated[int, Query(ge=1, le=1000)] = 10
) -> Response:
    return await reads.json(lambda: _leaderboard(reads.session, reads.row, top))


def _leaderboard(session: Session, row: store.StudyRow, top: int) -> LeaderboardPublic:
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
            diagnosis=diagnosis_public(e.trial.metrics),
            initial_loss=e.trial.initial_loss,
            expected_initial_loss=e.trial.expected_initial_loss,
            stopped_early_at=e.trial.stopped_early_at,
            best_epoch=e.trial.best_epoch,
        )
        for e in entries
    ]
    return LeaderboardPublic(
        study_id=row.id,
        metric=row.metric,
        direction=row.direction,
        task=row.task,
        data=data,
        test=held_out(row),
    )


@router.get("/{study_id}/trials", response_model=TrialsPublic, responses=NOT_FOUND)
def list_trials(
    row: ReadableStudyDep,
    session: ReadSessionDep,
    state: StateQuery = "all",
    sort: SortQuery = "rank",
    desc: DescQuery = False,
    top: TopQuery = None,
    offset: OffsetQuery = 0,
    limit: Annotated[int, Query(ge=1, le=store.MAX_PAGE)] = 50,
) -> TrialsPublic:
    """Every trial, any state, sorted by any column, a parameter or a metric: the JSON twin
    of the study page's table (``limit=10000`` gives all of a study's trials)."""
    view = make_view(row, state=state, sort=sort, desc=desc, top=top, offset=offset, limit=limit)
    page = store.list_trials(session=session, study=row, view=view)
    return TrialsPublic(
        study_id=row.id,
        metric=row.metric,
        direction=row.direction,
        data=[TrialSummaryPublic.model_validate(t) for t in page.rows],
        count=page.total,
    )


@router.get(
    "/{study_id}/trials.csv",
    response_class=StreamingResponse,
    responses={**CSV_OK, **NOT_FOUND},
)
def export_trials(
    row: ReadableStudyDep,
    session: ReadSessionDep,
    state: StateQuery = "all",
    sort: SortQuery = "rank",
    desc: DescQuery = False,
    top: TopQuery = None,
) -> StreamingResponse:
    """The trials a view selects (all of them by default) as CSV: one column per parameter
    and metric, full precision; text that a spreadsheet would run as a formula is escaped."""
    view = make_view(row, state=state, sort=sort, desc=desc, top=top, limit=None)
    page = store.list_trials(session=session, study=row, view=view)
    filename = f"study-{row.id}-trials.csv"
    return StreamingResponse(
        trials_csv(page.rows, study_columns(session, row)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/{study_id}/changes", response_model=StudyChanges, responses=VERSIONED)
async def read_changes(
    reads: StudyReadsDep,
    cursor: Annotated[int, Query(ge=0, le=2**31 - 1, description="from the last answer")] = 0,
) -> Response:
    """Trials that ended since ``cursor`` (in the order they ended) and every running
    trial; poll with the returned cursor to get only what is new."""

    def changes() -> StudyChanges:
        found = store.changes_since(session=reads.session, study=reads.row, cursor=cursor)
        return StudyChanges(
            study=reads.summary()[1],
            cursor=found.cursor,
            finished=[TrialSummaryPublic.model_validate(t) for t in found.finished],
            running=[TrialSummaryPublic.model_validate(t) for t in found.running],
        )

    return await reads.json(changes)


@router.get("/{study_id}/trials/{number:int}", response_model=TrialPublic, responses=NOT_FOUND)
def read_trial(row: ReadableStudyDep, number: TrialNumber, session: ReadSessionDep) -> TrialPublic:
    trial = store.get_trial(session=session, study_id=row.id, number=number)
    if trial is None:
        raise NotFound(f"trial {number} of study {row.id} not found")
    return TrialPublic.model_validate(
        {
            **{c: getattr(trial, c) for c in TrialPublic.model_fields if hasattr(trial, c)},
            "prune_reason": trial.reason,
            "diagnosis": diagnosis_public(trial.metrics),
        }
    )


@router.get(
    "/{study_id}/model",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {}}, "description": "The model file"},
        **NOT_FOUND,
    },
)
def download_model(row: ReadableStudyDep, session: ReadSessionDep) -> Response:
    """The best trial's trained model as one file: a zip of ``config.json`` (architecture,
    input preparation fitted on the training split, class labels or target scale, dev and
    train metrics, and the held-out test metrics once the study has scored its winner)
    and ``state_dict.pt``. Load it with ``models.load_model(path)``."""
    if is_own_code(row):
        raise NotFound(f"study {row.id} trains your own code: hpsearch keeps no model of it")
    model = store.best_model(session=session, study=row)
    if model is None:
        raise NotFound(f"study {row.id} has no complete trial yet: no model to download")
    from models import pack_model  # torch: paid on the first download only

    test = held_out(row)
    config = model.config | {
        "study": {"id": row.id, "name": row.name, "metric": row.metric, "value": model.value},
        "trial": model.number,
        "test": test.model_dump() if test.trial == model.number else None,
    }
    filename = f"study-{row.id}-trial-{model.number}.hpsmodel.zip"
    return Response(
        pack_model(config, model.weights),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post("/{study_id}/cancel", response_model=StudyPublic, responses=NOT_FOUND | CONFLICT)
def cancel_study(row: OwnedStudyDep, session: SessionDep, settings: SettingsDep) -> StudyPublic:
    if not store.cancel_study(session=session, study_id=row.id):
        raise Conflict(f"study {row.id} is already {row.status}")
    session.commit()
    session.refresh(row)
    return study_public(session, row, grace_s=settings.grace_period)


__all__ = ["AUTH", "NOT_FOUND", "StudyId", "TrialNumber", "router"]
