"""/api/v1/workers: the registered worker processes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from search import store
from service.deps import ReadSessionDep
from service.schemas import WorkerPublic, WorkersPublic

router = APIRouter(prefix="/workers", tags=["workers"])


@router.get("", response_model=WorkersPublic)
def list_workers(
    session: ReadSessionDep,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    include_stopped: bool = False,
) -> WorkersPublic:
    rows, count = store.list_workers(
        session=session, offset=offset, limit=limit, include_stopped=include_stopped
    )
    return WorkersPublic(data=[WorkerPublic.model_validate(r) for r in rows], count=count)
