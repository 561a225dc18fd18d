"""``/studies/{id}/trials/{number}``: one trial's parameters, metrics, curves, state,
reason, worker, device and duration."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from search import store
from service.auth import ReadableStudyDep
from service.deps import ReadSessionDep, TrialNumber
from service.errors import NotFound
from service.pages._render import render
from service.plots import curves_payload
from service.views import diagnosis_public

router = APIRouter()


def script_json(data: object) -> str:
    """JSON safe to put inside ``<script type="application/json">``."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@router.get("/studies/{study_id}/trials/{number}", response_class=HTMLResponse)
def trial_page(
    row: ReadableStudyDep, number: TrialNumber, request: Request, session: ReadSessionDep
) -> HTMLResponse:
    trial = store.get_trial(session=session, study_id=row.id, number=number)
    if trial is None:
        raise NotFound(f"trial {number} of study {row.id} not found")
    summary = store.trial_summaries(session=session, study=row, numbers=[number])[0]
    complete = store.trial_counts(session=session, study_ids=[row.id])[row.id].get(
        store.T_COMPLETE, 0
    )
    worker = (
        store.get_worker(session=session, worker_id=trial.worker_id)
        if trial.worker_id is not None
        else None
    )
    factor = float(row.spec["pruning"]["divergence_factor"])
    curves = store.trial_curves(session=session, study_id=row.id, numbers=[number])
    payload = curves_payload(curves, metric=row.metric, factor=factor)[0]
    return render(
        request,
        "trial.html",
        study=row,
        trial=trial,
        rank=summary.rank,
        complete=complete,
        worker=worker,
        epochs=_epochs(row.spec, trial.params),
        factor=factor,
        threshold=payload["threshold"],
        reading=diagnosis_public(trial.metrics),
        curves_json=script_json(
            {"metric": row.metric, "direction": row.direction, "curves": [payload]}
        ),
    )


def _epochs(spec: dict, params: dict) -> int:
    return int(params.get("epochs", spec["training"]["epochs"]))


__all__ = ["router", "script_json"]
