"""Our exception tree, mapped to HTTP status codes in one place.

HpsError
 ├── Unauthorized    401  (no key, a wrong or revoked key; a page redirects to /signin)
 ├── Forbidden       403  (a cross-site or CSRF-less state change)
 ├── NotFound        404  (unknown study, trial or dataset, or another user's; no model yet)
 ├── Conflict        409  (cancel a finished study; delete a dataset in use)
 ├── TooLarge        413  (an upload over HPS_MAX_UPLOAD_MB)
 ├── Unsupported     415  (an upload that is not CSV or Parquet)
 └── BadRequest      422  (input pydantic could not catch)

API clients get ``{"detail": ...}``; a browser asking for a page gets the same message as
an HTML page with a link home. Anything unexpected is a 500 whose body names only the
request id (the traceback goes to the log under that id, never to the client).

A database error is a 503 with ``Retry-After`` when the database is away rather than the
request wrong (``search.store.is_unavailable``: refused, dropped, restarting, a full disk),
whether SQLAlchemy raised it or Optuna's storage wrapped it; the body names the error's
first line, the log has one line per request and no traceback. The next request after
the database returns is served as usual: nothing here holds state. Any other database
error is a bug or a damaged schema: the 500 above.
"""

from __future__ import annotations

import logging
import math
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from optuna.exceptions import StorageInternalError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from search.store import is_unavailable, reason

TITLES = {
    400: "Bad request",
    401: "Sign in",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported file",
    503: "Service unavailable",
}
RETRY_AFTER_S = 5  # how long a caller waits before trying again while the database is away
log = logging.getLogger("hpsearch.errors")


class HpsError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Unauthorized(HpsError):
    status_code = 401


class Forbidden(HpsError):
    status_code = 403


class NotFound(HpsError):
    status_code = 404


class Conflict(HpsError):
    status_code = 409


class TooLarge(HpsError):
    status_code = 413


class Unsupported(HpsError):
    status_code = 415


class BadRequest(HpsError):
    """Invalid input naming its field: answered like FastAPI's own 422s
    (``{"detail": [{"loc": [where, field], "msg": ..., "type": "value_error"}]}``)."""

    status_code = 422

    def __init__(self, field: str, message: str, where: str = "query") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.where = where

    def errors(self) -> list[dict[str, Any]]:
        return [{"loc": [self.where, self.field], "msg": self.message, "type": "value_error"}]


def _wants_page(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or path.endswith(("/live", ".csv", ".json")):
        return False
    return "text/html" in request.headers.get("accept", "")


def _page(request: Request, status_code: int, detail: str) -> Response:
    from service.pages._render import render  # templates only when a page is asked for

    title = TITLES.get(status_code, "Invalid input" if status_code == 422 else "Error")
    return render(request, "error.html", status_code=status_code, title=title, detail=detail)


def _validation_text(errors: list[Any]) -> str:
    parts = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("query", "path", "body")]
        parts.append(f"{'.'.join(loc)}: {e.get('msg', 'invalid value')}" if loc else e["msg"])
    return "; ".join(parts)


def database_unavailable(request: Request, exc: BaseException) -> Response:
    """The answer while the database is away: 503, ``Retry-After``, the error's first line
    (never its SQL), and one log line."""
    why = reason(exc)
    log.warning(
        "%s %s: the database is unavailable (%s); answered 503",
        request.method,
        request.url.path,
        why,
    )
    detail = f"the database is unavailable ({why}); try again shortly"
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    if _wants_page(request):
        page = _page(request, 503, detail)
        page.headers.update(headers)
        return page
    return JSONResponse(status_code=503, content={"detail": detail}, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SQLAlchemyError)
    @app.exception_handler(StorageInternalError)  # Optuna's wrapper of a failed commit
    async def _database_error(request: Request, exc: Exception) -> Response:
        if not is_unavailable(exc):
            raise exc  # not an outage: the 500 of ``_unexpected``, traceback logged
        return database_unavailable(request, exc)

    @app.exception_handler(HpsError)
    async def _hps_error(request: Request, exc: HpsError) -> Response:
        if isinstance(exc, Unauthorized) and _wants_page(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/signin?" + urlencode({"next": target}), status_code=303)
        if _wants_page(request):
            return _page(request, exc.status_code, exc.detail)
        if isinstance(exc, BadRequest):
            return JSONResponse(status_code=422, content={"detail": exc.errors()})
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return JSONResponse(
            status_code=exc.status_code, content={"detail": exc.detail}, headers=headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if is_unavailable(exc):  # a database error in a wrapper not named above
            return database_unavailable(request, exc)
        # Never the traceback or SQL text: the log has them under the request id.
        from asgi_correlation_id import correlation_id

        request_id = correlation_id.get() or "-"
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        detail = f"internal server error (request id {request_id}); the server log has the cause"
        return JSONResponse(
            status_code=500, content={"detail": detail}, headers={"X-Request-ID": request_id}
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own handler echoes the input, and NaN/inf there cannot be encoded as
        # JSON: the caller would get a 500 instead of the 422 naming their mistake.
        if _wants_page(request):
            return _page(request, 422, _validation_text(list(exc.errors())))
        detail = _json_safe(jsonable_encoder(exc.errors()))
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        headers = exc.headers
        if exc.status_code == 405:  # Starlette names the first route's methods only
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        if _wants_page(request):
            page = _page(request, exc.status_code, str(exc.detail))
            page.headers.update(headers or {})
            return page
        return JSONResponse(
            status_code=exc.status_code, content={"detail": exc.detail}, headers=headers
        )


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at this path (a 405's ``Allow``)."""
    return [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "HpsError",
    "NotFound",
    "RETRY_AFTER_S",
    "TooLarge",
    "Unauthorized",
    "Unsupported",
    "database_unavailable",
    "install_error_handlers",
]
