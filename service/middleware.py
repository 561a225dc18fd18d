"""ASGI middleware around the app, outermost first:

- request ids (``asgi-correlation-id``): ``X-Request-ID`` taken from the caller when it is
  short and plain, made otherwise; echoed in the response and put on every log line;
- an access log line per request (method, path, status, milliseconds, request id);
- security headers on every response: a content security policy allowing only the app's own
  scripts, styles and requests, no framing, ``nosniff``, no referrer;
- cross-site state changes refused (``Origin`` / ``Sec-Fetch-Site``), whatever the auth;
- request body limits: the spec's for ``POST /api/v1/studies``, the upload limit for the
  upload routes in ``UPLOAD_PREFIXES``, the general one for everything else (413).

Written by hand (each is a few lines over the ASGI interface): the libraries for headers
or size limits would each bring a framework of options for one dictionary or one counter.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.settings import Settings

access_log = logging.getLogger("hpsearch.access")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UPLOAD_PREFIXES: tuple[str, ...] = ("/api/v1/datasets",)  # issue 8's uploads
SPEC_ROUTES = frozenset({("POST", "/api/v1/studies")})
EMPTY_STYLE_HASH = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"  # sha256 of ""


@functools.cache
def page_csp() -> str:
    """The content security policy: the app's own scripts, stylesheets and requests only,
    plus the two constant inline stylesheets of the app's own plotly.js, by hash (the empty
    ``<style>`` it fills through the CSSOM, and its map library's). No ``eval``: plotly.js
    is its "strict" bundle, which compiles no code from strings. Style attributes: only the
    empty one (``style=""``, by hash): plotly.js draws through the CSSOM (``el.style.x =``,
    which CSP does not govern) except that its colorbar (the parallel-coordinates plot's)
    clears each swatch with ``setAttribute('style', '')``, which chromium otherwise reports
    as a violation on every draw. An empty style attribute can neither show nor load
    anything; any other style attribute is refused."""
    from service.pages.assets import plotly_style_hashes

    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' " + " ".join(plotly_style_hashes()),
            "style-src-elem 'self' " + " ".join(plotly_style_hashes()),
            "style-src-attr 'unsafe-hashes' " + EMPTY_STYLE_HASH,
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


# FastAPI's /docs and /redoc load their viewers from a CDN with an inline bootstrap script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https:; "
    "worker-src 'self' blob:; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would make form posts Origin: null
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def _json(status: int, detail: str) -> tuple[dict[str, Any], bytes]:
    import json

    body = json.dumps({"detail": detail}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
    }
    return start, body


async def _refuse(send: Send, status: int, detail: str) -> None:
    start, body = _json(status, detail)
    await send(start)
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        csp = DOCS_CSP if scope["path"].startswith(DOCS_PATHS) else page_csp()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"content-security-policy", csp.encode()),
                    *HEADERS,
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _cross_site(headers: dict[str, str]) -> bool:
    """Whether a browser sent this from another site (or another port of this host).
    Browsers say so in ``Sec-Fetch-Site``; older ones only in ``Origin``. Clients that are
    not browsers send neither, and are judged by their key alone."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != headers.get("host", "")


class SameOriginWrites:
    """Refuse a state-changing request that a browser sends from another site."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            if _cross_site(headers):
                return await _refuse(send, 403, "cross-site request refused")
        await self.app(scope, receive, send)


class _TooLarge(Exception):
    """Raised inside the route's body read once its limit is passed."""


class BodyLimit:
    """One limit per request body, enforced while it streams in: a declared length over it
    is answered 413 at once; a body sent without one (chunked) is cut off as soon as it
    passes the limit, never held whole, and whatever the route had started is dropped (it
    raises inside its body read, so nothing is stored)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def limit(self, method: str, path: str) -> tuple[int, str]:
        s = self.settings
        if (method, path.rstrip("/")) in SPEC_ROUTES:
            return s.max_spec_bytes, "spec (HPS_MAX_SPEC_BYTES)"
        if path.startswith(UPLOAD_PREFIXES):
            return int(s.max_upload_mb * 1_000_000), "upload (HPS_MAX_UPLOAD_MB)"
        return s.max_body_bytes, "request body (HPS_MAX_BODY_BYTES)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, what = self.limit(scope["method"], scope["path"])
        detail = f"{what} too large: the limit is {limit:,} bytes"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await _refuse(send, 413, detail)
        seen, over = 0, False

        async def counted() -> Message:  # bodies sent without a length are counted
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                over = True
                raise _TooLarge
            return message

        async def guarded(message: Message) -> None:
            if not over:  # the route's answer to its failed read is replaced by the 413
                await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not over:  # whatever the route made of _TooLarge: the 413 below
                raise
        if over:  # the rest of the body was never read: the connection goes with it
            start, body = _json(413, detail)
            start["headers"].append((b"connection", b"close"))
            await send(start)
            await send({"type": "http.response.body", "body": body})


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            ms = (time.perf_counter() - start) * 1000
            access_log.info(
                "%s %s %d %.1fms",
                scope["method"],
                scope["path"],
                status,
                ms,
                extra={"method": scope["method"], "path": scope["path"], "status": status},
            )


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """Add the middleware; the last added runs outermost."""
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(SameOriginWrites)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessLog)
    app.add_middleware(
        CorrelationIdMiddleware,
        header_name="X-Request-ID",
        validator=lambda value: bool(REQUEST_ID.match(value)),
    )


__all__ = [
    "EMPTY_STYLE_HASH",
    "UPLOAD_PREFIXES",
    "correlation_id",
    "install_middleware",
    "page_csp",
]
