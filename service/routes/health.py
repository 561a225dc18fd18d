"""/health (and /api/v1/health): the service and its database answer (503 with
``Retry-After`` while the database does not, like every other route then)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.deps import ReadSessionDep
from service.errors import RETRY_AFTER_S
from service.schemas import Health

router = APIRouter(tags=["health"])
VERSION = "0.1.0"


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(session: ReadSessionDep) -> Health | JSONResponse:
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:
        body = Health(
            status="unavailable", database=f"error: {type(exc).__name__}", version=VERSION
        )
        return JSONResponse(
            status_code=503,
            content=body.model_dump(),
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return Health(status="ok", database="ok", version=VERSION)
