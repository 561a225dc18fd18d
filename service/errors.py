"""Our exception tree, mapped to HTTP status codes in one place.

HpsError
 ├── NotFound        404  (unknown study, trial)
 ├── Conflict        409  (cancel a finished study)
 └── BadRequest      422  (input pydantic could not catch)
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
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

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input, and NaN/inf there cannot be encoded as
        # JSON: the caller would get a 500 instead of the 422 naming their mistake.
        detail = _json_safe(jsonable_encoder(exc.errors()))
        return JSONResponse(status_code=422, content={"detail": detail})


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


__all__ = ["BadRequest", "Conflict", "HpsError", "NotFound", "install_error_handlers"]
