"""``/compare?ids=1,2``: best-so-far curves of several studies on one plot (drawn from
``/api/v1/compare``) and their best trials side by side."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from search import store
from service.auth import PrincipalDep, owner_filter, signed_in
from service.deps import ReadSessionDep, SettingsDep
from service.pages._render import render
from service.routes.plots import parse_ids, readable_studies
from service.views import read_progress, study_public

router = APIRouter()


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    session: ReadSessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    ids: Annotated[list[str] | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    if not ids or not any(part.strip(" ,") for part in ids):
        signed_in(principal)  # the picker lists the caller's studies
        recent, _ = store.list_studies(
            session=session, offset=0, limit=50, owner=owner_filter(principal)
        )
        return render(request, "compare.html", studies=[], recent=recent, ids_text="")
    study_ids = parse_ids(ids)
    rows = readable_studies(session, principal, study_ids)
    grace_s = settings.grace_period
    progress = read_progress(session, rows, grace_s=grace_s)
    studies = [study_public(session, r, grace_s=grace_s, progress=progress[r.id]) for r in rows]
    names = [n for s in studies for n in (s.best.params if s.best else {})]
    return render(
        request,
        "compare.html",
        studies=studies,
        recent=[],
        ids_text=",".join(str(i) for i in study_ids),
        param_names=list(dict.fromkeys(names)),
    )


__all__ = ["router"]
