"""``/workers``: the registered worker processes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from search import store
from service.auth import SignedInDep
from service.deps import ReadSessionDep
from service.pages._render import render
from service.views import visible_workers

router = APIRouter()


@router.get("/workers", response_class=HTMLResponse)
def workers_page(
    request: Request, principal: SignedInDep, session: ReadSessionDep, include_stopped: bool = False
) -> HTMLResponse:
    rows, count = store.list_workers(
        session=session, offset=0, limit=500, include_stopped=include_stopped
    )
    return render(
        request,
        "workers.html",
        workers=visible_workers(session, principal, rows),
        count=count,
        include_stopped=include_stopped,
    )


__all__ = ["router"]
