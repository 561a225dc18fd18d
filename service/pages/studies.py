"""``/``: all studies; ``/studies/{id}``: one study's header, leaderboard and plots, with
``/studies/{id}/live`` feeding its live updates; ``/studies/{id}/cancel``."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, replace
from typing import Annotated, Any
from urllib.parse import urlencode

import yaml
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from search import store
from service.auth import OwnedStudyDep, PrincipalDep, listed_studies
from service.deps import ReadSessionDep, SessionDep, SettingsDep
from service.errors import BadRequest, Conflict
from service.pages._render import render, templates
from service.plots import CURVE_TOP, curve_names, curves_payload, points_payload, study_axes
from service.read_cache import StudyReadsDep
from service.schemas import StudyPublic
from service.views import Column, make_view, read_progress, study_columns, study_public

router = APIRouter()
POLL_MS = 1500  # live pages poll at most every 2 s
PER_PAGE = (20, 50, 100, 500)
TOP = (5, 10, 20, 50, 100)
STATE_LABELS = {
    "all": "all",
    "complete": "complete",
    "pruned": "pruned",
    "failed": "failed",
    "running": "running",
}


def _int_or_none(name: str, raw: str, low: int, high: int) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(name, f"must be a whole number from {low} to {high}, got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class PageQuery:
    """The study page's query string: view, page and page size."""

    state: str = "all"
    sort: str = "rank"
    desc: bool = False
    top: int | None = None
    page: int = 1
    per_page: int = 50

    def url(self, study_id: int, **changes: Any) -> str:
        q = replace(self, **changes)
        defaults = PageQuery()
        params = {
            k: ("1" if v is True else v)
            for k, v in vars(q).items()
            if v != getattr(defaults, k) and v is not None and v is not False
        }
        return f"/studies/{study_id}" + (f"?{urlencode(params)}" if params else "")

    def view_params(self, **paging: int) -> str:
        """The view part as a query string (for the export links; with ``paging``, page
        and per_page too)."""
        params: dict[str, Any] = {"state": self.state, "sort": self.sort}
        if self.desc:
            params["desc"] = "true"
        if self.top is not None:
            params["top"] = self.top
        return urlencode(params | paging)


async def page_query(
    state: Annotated[str, Query(max_length=16)] = "all",
    sort: Annotated[str, Query(max_length=80)] = "rank",
    desc: bool = False,
    top: Annotated[str, Query(max_length=8)] = "",
    page: Annotated[int, Query(ge=1, le=10**6)] = 1,
    per_page: Annotated[int, Query(ge=1, le=store.MAX_PAGE)] = 50,
) -> PageQuery:
    """The study page's query string (shared by the page and its live feed)."""
    return PageQuery(state, sort, desc, _int_or_none("top", top, 1, store.MAX_PAGE), page, per_page)


PageQueryDep = Annotated[PageQuery, Depends(page_query)]


def _pager(q: PageQuery, study_id: int, total: int) -> dict[str, Any]:
    """What the pager shows for page ``q.page`` of ``total`` trials."""
    pages = max(1, math.ceil(total / q.per_page))
    offset = (q.page - 1) * q.per_page
    return {
        "total": total,
        "offset": offset,
        "shown": max(0, min(q.per_page, total - offset)),
        "page": q.page,
        "pages": pages,
        "prev_url": q.url(study_id, page=q.page - 1) if q.page > 1 else None,
        "next_url": q.url(study_id, page=q.page + 1) if q.page < pages else None,
    }


def _row_key(view: store.TrialView) -> Any:
    return lambda t: json.dumps(store.sort_key(t, view.sort))


# ------------------------------------------------------------------ all studies


@router.get("/", response_class=HTMLResponse)
def studies_page(
    request: Request,
    principal: PrincipalDep,
    session: ReadSessionDep,
    settings: SettingsDep,
    page: Annotated[int, Query(ge=1, le=10**6)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> HTMLResponse:
    """The studies the caller may read (as ``GET /api/v1/studies``): a visitor with no key
    sees the public ones."""
    offset = (page - 1) * per_page
    owner, public = listed_studies(principal)
    rows, total = store.list_studies(
        session=session, offset=offset, limit=per_page, owner=owner, public=public
    )
    grace_s = settings.grace_period
    progress = read_progress(session, rows, grace_s=grace_s)
    studies = [study_public(session, r, grace_s=grace_s, progress=progress[r.id]) for r in rows]
    pages = max(1, math.ceil(total / per_page))

    def link(p: int) -> str:
        return "/?" + urlencode({"page": p, "per_page": per_page})

    return render(
        request,
        "studies.html",
        studies=studies,
        total=total,
        offset=offset,
        page=page,
        pages=pages,
        prev_url=link(page - 1) if page > 1 else None,
        next_url=link(page + 1) if page < pages else None,
    )


# ------------------------------------------------------------------ one study


def _state_options(raw: dict[str, int]) -> list[tuple[str, str]]:
    """The state filter's choices with their counts (``raw``: trials by state)."""
    by_filter = {
        name: sum(raw.get(s, 0) for s in states) if states else sum(raw.values())
        for name, states in store.STATE_FILTERS.items()
    }
    return [(name, f"{STATE_LABELS[name]} ({by_filter[name]})") for name in store.STATE_FILTERS]


def _without_nulls(value: Any) -> Any:
    """``value`` with every null entry of its mappings left out (a spec of the user's own
    code stores ``dataset: null`` and ``training: null``; settings left unset are null)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


@functools.lru_cache(maxsize=256)
def _spec_yaml(spec_json: str) -> str:
    """A stored spec as YAML without its nulls, by its JSON (a study's spec never changes,
    and the dump costs more than the rest of the page's reads)."""
    spec = _without_nulls(json.loads(spec_json))
    return yaml.safe_dump(spec, sort_keys=False, default_flow_style=None)


def columns_key(columns: list[Column]) -> str:
    """The table's columns as one string: the live script reloads its table when the
    study's columns change (the user's own code reported a new metric)."""
    return " ".join(c.sort for c in columns)


@router.get("/studies/{study_id}", response_class=HTMLResponse)
async def study_page(request: Request, q: PageQueryDep, reads: StudyReadsDep) -> Response:
    return await reads.page(
        lambda: _study_page(reads.row, request, reads.session, q, reads.summary())
    )


def _study_page(
    row: store.StudyRow,
    request: Request,
    session: Session,
    q: PageQuery,
    summary: tuple[dict[str, int], StudyPublic],
) -> HTMLResponse:
    page, per_page = q.page, q.per_page
    offset = (page - 1) * per_page
    view = make_view(
        row, state=q.state, sort=q.sort, desc=q.desc, top=q.top, offset=offset, limit=per_page
    )
    result = store.list_trials(session=session, study=row, view=view)
    raw_counts, study = summary
    api_base = f"/api/v1/studies/{row.id}"
    columns = study_columns(session, row)
    return render(
        request,
        "study.html",
        study=study,
        active=row.status in store.ACTIVE_STUDY_STATES,
        cursor=result.cursor if result.cursor is not None else row.change_seq,
        live_url=f"/studies/{row.id}/live?{q.view_params(page=page, per_page=per_page)}",
        poll_ms=POLL_MS,
        spec_yaml=_spec_yaml(json.dumps(row.spec)),
        view=view,
        per_page=per_page,
        columns=columns,
        columns_key=columns_key(columns),
        rows=result.rows,
        row_key=_row_key(view),
        paging=_pager(q, row.id, result.total),
        sort_url=lambda col: q.url(
            row.id, sort=col, desc=(not q.desc) if q.sort == col else False, page=1
        ),
        state_options=_state_options(raw_counts),
        top_options=TOP,
        per_page_options=sorted({*PER_PAGE, per_page}),
        csv_view_url=f"{api_base}/trials.csv?{q.view_params()}",
        csv_all_url=f"{api_base}/trials.csv",
        json_view_url=f"{api_base}/trials?{q.view_params()}&limit={store.MAX_PAGE}",
        json_all_url=f"{api_base}/trials?limit={store.MAX_PAGE}",
        curve_top=CURVE_TOP,
        curve_limit=curve_names(row).limit_text,
        slurm_jobs=store.slurm_jobs(session=session, study_id=row.id),
    )


@router.get("/studies/{study_id}/live", response_class=JSONResponse)
async def study_live(
    q: PageQueryDep,
    reads: StudyReadsDep,
    cursor: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    """What the open study page needs since ``cursor``: the header, pager and state-filter
    counts, rows of trials that ended or are running (marked ``show`` when they belong in
    the page's view), their plot points, and curves for running trials and for new ones
    the curve plot shows."""
    row, session = reads.row, reads.session
    return await reads.feed(
        lambda: _live(
            row,
            session,
            q,
            store.changes_since(session=session, study=row, cursor=cursor),
            reads.summary(),
        )
    )


def _live(
    row: store.StudyRow,
    session: Session,
    q: PageQuery,
    changes: store.Changes,
    summary: tuple[dict[str, int], StudyPublic],
) -> JSONResponse:
    view = make_view(row, state=q.state, sort=q.sort, desc=q.desc, top=q.top, limit=None)
    raw_counts, study = summary
    payload = _live_payload(session, row, study, view, changes)
    pager = _pager(q, row.id, store.count_trials(session=session, study=row, view=view))
    payload["pager_html"] = str(templates.env.get_template("_macros.html").module.pager(**pager))  # type: ignore[attr-defined]
    payload["state_options"] = dict(_state_options(raw_counts))
    return JSONResponse(payload)


def _live_payload(
    session: Session,
    row: store.StudyRow,
    study: StudyPublic,
    view: store.TrialView,
    changes: store.Changes,
) -> dict[str, Any]:
    columns = study_columns(session, row)
    macro = templates.env.get_template("_trials.html").module.trial_row  # type: ignore[attr-defined]
    key = _row_key(view)
    allowed = store.STATE_FILTERS[view.state]
    trials = [*changes.finished, *changes.running]
    rows = [
        {
            "number": t.number,
            "state": t.state,
            "rank": t.rank,
            "key": key(t),
            "show": (allowed is None or t.state in allowed)
            and (view.top is None or (t.rank is not None and t.rank <= view.top)),
            "html": str(macro(row.id, columns, t, key(t))),
        }
        for t in trials
    ]
    wanted = [
        t.number
        for t in trials
        if t.state in (store.T_RUNNING, store.T_LOST, store.T_PRUNED)
        or (t.rank is not None and t.rank <= CURVE_TOP)
    ]
    curves = store.trial_curves(session=session, study_id=row.id, numbers=wanted)
    points = [store.PlotPoint(t.number, t.state, t.value, t.params) for t in changes.finished]
    header = templates.env.get_template("_study_header.html").render(study=study)
    return {
        "status": study.status,
        "active": study.status in store.ACTIVE_STUDY_STATES,
        "cursor": changes.cursor,
        "header_html": header,
        "rows": rows,
        "running": [t.number for t in changes.running],
        "points": points_payload(points, study_axes(row.spec)),
        "curves": curves_payload(curves, curve_names(row)),
        "columns": columns_key(columns),
    }


# ------------------------------------------------------------------ cancel


@router.get("/studies/{study_id}/cancel", response_class=HTMLResponse)
def cancel_confirm(row: OwnedStudyDep, request: Request) -> Response:
    """The confirmation step (the study page's script asks in a dialog instead)."""
    if row.status not in store.ACTIVE_STUDY_STATES:
        return RedirectResponse(f"/studies/{row.id}", status_code=303)
    return render(request, "cancel.html", study=row)


@router.post("/studies/{study_id}/cancel")
def cancel_submit(row: OwnedStudyDep, session: SessionDep) -> RedirectResponse:
    if not store.cancel_study(session=session, study_id=row.id):
        raise Conflict(f"study {row.id} is already {row.status}")
    session.commit()
    return RedirectResponse(f"/studies/{row.id}", status_code=303)


__all__ = ["router"]
