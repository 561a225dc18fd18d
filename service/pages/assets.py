"""Static assets served by the app itself, so pages work with no internet access:
the app's stylesheet and scripts (``/static/NAME?v=HASH``) and plotly.js
(``/assets/plotly-VERSION.min.js``), each gzip-compressed once per process. Versioned URLs
are cached by browsers for a year.

plotly.js is plotly's "strict" bundle, vendored in ``static/vendor/`` (see the README there):
the bundle inside the plotly Python package compiles WebGL shaders with ``eval``, which the
pages' content security policy forbids."""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.errors import NotFound
from service.pages._render import STATIC_DIR, templates

router = APIRouter(include_in_schema=False)
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    media_type: str
    version: str


def _asset(path: Path, media_type: str | None = None) -> Asset:
    body = path.read_bytes()
    media = media_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if media.startswith("text/") or media.endswith(("javascript", "json", "svg+xml")):
        media += "; charset=utf-8"
    return Asset(
        body=body,
        gzipped=gzip.compress(body, compresslevel=9, mtime=0),
        media_type=media,
        version=hashlib.sha256(body).hexdigest()[:12],
    )


@functools.cache
def static_assets() -> dict[str, Asset]:
    return {p.name: _asset(p) for p in sorted(STATIC_DIR.iterdir()) if p.is_file()}


PLOTLY_VERSION = "4.1.1"
PLOTLY_PATH = STATIC_DIR / "vendor" / f"plotly-strict-{PLOTLY_VERSION}.min.js"


@functools.cache
def plotly_asset() -> Asset:
    asset = _asset(PLOTLY_PATH, "text/javascript")
    return Asset(asset.body, asset.gzipped, asset.media_type, PLOTLY_VERSION)


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@functools.cache
def plotly_style_hashes() -> tuple[str, ...]:
    """CSP hashes of the only inline styles plotly.js makes: the empty ``<style>`` it then
    fills through the CSSOM (which CSP does not govern), and the stylesheet of its bundled
    map library. Allowing exactly these lets the plots draw under ``style-src 'self'``
    without allowing any other inline style."""
    source = plotly_asset().body.decode("utf-8")
    sheets = re.findall(r"\.textContent='((?:[^'\\]|\\.)*)'", source)
    return tuple(_csp_hash(t) for t in ["", *(s for s in sheets if "\\" not in s)])


def static_url(name: str) -> str:
    asset = static_assets().get(name)
    if asset is None:
        raise KeyError(f"no static file {name!r} in {STATIC_DIR}")
    return f"/static/{name}?v={asset.version}"


def plotly_url() -> str:
    return f"/assets/plotly-{plotly_asset().version}.min.js"


def _send(request: Request, asset: Asset, cache: str) -> Response:
    headers = {"Cache-Control": cache, "ETag": f'"{asset.version}"', "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/static/{name}")
def read_static(name: str, request: Request) -> Response:
    asset = static_assets().get(name)
    if asset is None:
        raise NotFound(f"no static file {name!r}")
    current = request.query_params.get("v") == asset.version
    return _send(request, asset, IMMUTABLE if current else "no-cache")


@router.get("/assets/plotly-{version}.min.js")
def read_plotly(version: str, request: Request) -> Response:
    asset = plotly_asset()
    if version != asset.version:
        raise NotFound(f"plotly.js {version} is not served here; this app has {asset.version}")
    return _send(request, asset, IMMUTABLE)


templates.env.globals.update(static_url=static_url, plotly_url=plotly_url)

__all__ = ["plotly_style_hashes", "plotly_url", "router", "static_url"]
