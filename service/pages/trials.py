"""``/studies/{id}/trials/{number}``: one trial's parameters, metrics, curves, state,
reason, worker and device (or the client of the user's own code that claimed it, and a
failed trial's output), duration, and the trials it trained together with in a stack."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from search import store
from service.auth import ReadableStudyDep
from service.deps import ReadSessionDep, TrialNumber
from service.errors import NotFound
from service.pages._render import render
from service.plots import curve_names, curves_head, curves_payload
from service.views import diagnosis_public

router = APIRouter()


def script_json(data: object) -> str:
    """JSON safe to put inside ``<script type="application/json">``."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@router.get("/studies/{study_id}/trials/{number:int}", response_class=HTMLResponse)
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
    mates = (
        store.stack_trials(session=session, study_id=row.id, stack=trial.stack)
        if trial.stack is not None
        else []
    )
    names = curve_names(row)
    curves = store.trial_curves(session=session, study_id=row.id, numbers=[number])
    payload = curves_payload(curves, names, others=True)[0]
    return render(
        request,
        "trial.html",
        study=row,
        trial=trial,
        rank=summary.rank,
        complete=complete,
        worker=worker,
        stack_mates=[n for n in mates if n != number],
        epochs=epochs_text(row.spec, trial),
        curve_limit=names.limit_text,
        threshold=payload["threshold"],
        other_metrics=list(payload["others"]),
        reading=diagnosis_public(trial.metrics),
        curves_json=script_json(
            {**curves_head(names), "direction": row.direction, "curves": [payload]}
        ),
    )


def epochs_text(spec: dict[str, Any], trial: store.TrialRow) -> str:
    """How far a trial got: ``3 of 20`` (a built-in model trains a set number of epochs);
    the user's own code says which epochs it reported (they may skip numbers)."""
    if spec.get("training") is None:
        reported = list((trial.curves or {}).get("epoch") or [])
        if not reported:
            return "none reported"
        n = len(reported)
        return f"{n} report{'s' if n > 1 else ''}, the last at epoch {reported[-1]}"
    return f"{trial.epochs_run} of {int(trial.params.get('epochs', spec['training']['epochs']))}"


__all__ = ["epochs_text", "router", "script_json"]
