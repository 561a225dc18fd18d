"""Our exception tree, mapped to HTTP status codes in one place.

HpsError
 ├── NotFound        404  (unknown study, trial)
 ├── Conflict        409  (cancel a finished study)
 └── BadRequest      422  (input pydantic could not catch)
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class HpsError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(HpsError):
    status_code = 404


class Conflict(HpsError):
    status_code = 409


class BadRequest(HpsError):
    status_code = 422


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HpsError)
    async def _hps_error(_request: Request, exc: HpsError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail})


__all__ = ["BadRequest", "Conflict", "HpsError", "NotFound", "install_error_handlers"]
