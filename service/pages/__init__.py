"""HTML pages: server-rendered views (Jinja2) of the same reads the API serves, with a
small script for plots and live updates. Every page works without JavaScript except the
plots."""

from __future__ import annotations

from fastapi import APIRouter

from service.pages import assets, compare, signin, studies, trials, workers

router = APIRouter(include_in_schema=False)
for _module in (assets, signin, studies, trials, compare, workers):
    router.include_router(_module.router)

__all__ = ["router"]
