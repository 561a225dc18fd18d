"""/health (and /api/v1/health): the service and its database answer (503 with
``Retry-After`` while the database does not, like every other route then).

On ``serve`` with local workers the answer also counts them (``workers``: expected, live,
given up) and is 503 when none is live: a probe then tells a ``serve`` that lost its
workers from one that is working. An API process without local workers (``--workers 0``,
the API of a cluster) answers as before."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.deps import ReadSessionDep
from service.errors import RETRY_AFTER_S
from service.schemas import Health, WorkersHealth
from service.supervisor import LocalWorkers

router = APIRouter(tags=["health"])
VERSION = "0.1.0"


async def get_local_workers(request: Request) -> LocalWorkers | None:
    local: LocalWorkers | None = request.app.state.local_workers
    return local


LocalWorkersDep = Annotated[LocalWorkers | None, Depends(get_local_workers)]


def _workers_missing(workers: WorkersHealth | None) -> str | None:
    """Why serve's local workers make it unhealthy; None: they do not."""
    if workers is None or workers.expected == 0 or workers.live > 0:
        return None
    if workers.given_up == workers.expected:
        return f"workers given up: all {workers.expected} local workers crashed at start-up"
    given_up = f", {workers.given_up} given up" if workers.given_up else ""
    return f"no live workers: 0 of {workers.expected} local workers running{given_up}"


@router.get(
    "/health",
    response_model=Health,
    response_model_exclude_none=True,
    responses={503: {"model": Health}},
)
def health(session: ReadSessionDep, local: LocalWorkersDep) -> Health | JSONResponse:
    workers = None
    if local is not None:
        counts = local.counts()
        workers = WorkersHealth(
            expected=counts.expected, live=counts.live, given_up=counts.given_up
        )
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:
        body = Health(
            status="unavailable",
            database=f"error: {type(exc).__name__}",
            version=VERSION,
            workers=workers,
        )
        return JSONResponse(
            status_code=503,
            content=body.model_dump(exclude_none=True),
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    missing = _workers_missing(workers)
    if missing is not None:
        body = Health(
            status="unavailable", database="ok", version=VERSION, workers=workers, detail=missing
        )
        return JSONResponse(status_code=503, content=body.model_dump(exclude_none=True))
    return Health(status="ok", database="ok", version=VERSION, workers=workers)
