"""/api/v1/workers: the registered worker processes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from search import store
from service.auth import SignedInDep
from service.deps import ReadSessionDep
from service.routes.studies import AUTH
from service.schemas import WorkerPublic, WorkersPublic
from service.views import visible_workers

router = APIRouter(prefix="/workers", tags=["workers"], responses=AUTH)


@router.get("", response_model=WorkersPublic)
def list_workers(
    principal: SignedInDep,
    session: ReadSessionDep,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    include_stopped: bool = False,
) -> WorkersPublic:
    rows, count = store.list_workers(
        session=session, offset=offset, limit=limit, include_stopped=include_stopped
    )
    """Every worker; what it is training shows only when the caller may read that study."""
    shown = visible_workers(session, principal, rows)
    return WorkersPublic(data=[WorkerPublic.model_validate(w) for w in shown], count=count)
