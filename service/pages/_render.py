"""Jinja2 templates and the formatting filters pages use (numbers rounded for reading,
full precision kept for hover and export; UTC timestamps; durations)."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from search.axes import layers_label
from search.store import utcnow
from service.own_code import dataset_label, is_own_code
from service.routes.health import VERSION

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def num(value: Any, digits: int = 4) -> str:
    """A number rounded for reading: 4 significant digits, ``-`` when missing."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}g}"
    if isinstance(value, list | tuple):
        return layers_label(value)
    return str(value)


def full(value: Any) -> str:
    """Full precision, for ``title`` attributes and exports."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        return layers_label(value)
    return str(value)


def number(value: Any) -> Markup:
    """A number for a table cell: rounded, with full precision on hover (a function, not a
    template macro: a leaderboard page formats hundreds of cells, and a macro call costs
    several times a function call)."""
    if value is None:
        return Markup('<span class="missing">–</span>')
    # escape() and an f-string: what Markup.format does, at 2.5 times the speed (its
    # formatter is Python's string.Formatter); 11% of a study page's render.
    return Markup(f'<span title="{escape(full(value))}">{escape(num(value))}</span>')


def utc(value: datetime | None) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def short_time(value: datetime | None) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M")


def iso(value: datetime | None) -> str:
    return "" if value is None else value.isoformat() + "Z"


def duration(seconds: float | None) -> str:
    """``0.42 s``, ``12.3 s``, ``4 m 05 s``, ``2 h 03 m``."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"


def elapsed(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from ``start`` to ``end`` (to now while it is still going)."""
    if start is None:
        return None
    return max(0.0, ((end or utcnow()) - start).total_seconds())


def ago(value: datetime | None) -> str:
    seconds = elapsed(value, None)
    return "–" if seconds is None else f"{duration(seconds)} ago"


def csrf_input(principal: Any) -> Markup:
    """The hidden CSRF field of a state-changing form (only a cookie sign-in needs one)."""
    token = getattr(principal, "csrf", None)
    if not token:
        return Markup("")
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(escape(token))


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters.update(
    num=num,
    full=full,
    utc=utc,
    short_time=short_time,
    iso=iso,
    duration=duration,
    ago=ago,
    dataset_label=dataset_label,
)
templates.env.globals.update(
    number=number, elapsed=elapsed, version=VERSION, csrf_input=csrf_input, own_code=is_own_code
)


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page; the base layout shows who is signed in (``request.state.principal``,
    set by the auth dependency) and puts the CSRF token in state-changing forms."""
    context.setdefault("principal", getattr(request.state, "principal", None))
    context.setdefault("status_code", status_code)  # error.html shows it
    return templates.TemplateResponse(request, name, context, status_code=status_code)


__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "num", "number", "render", "templates"]
