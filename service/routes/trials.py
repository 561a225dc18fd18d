"""The REST trial API: the user's own training code claims trials of a ``model: external``
study, reports each epoch and gets the server's decision in the same round trip, and ends
them (``search.remote`` is the lifecycle; these handlers only translate). Writing a study's
trials takes the right to change it: its owner's key, or an admin's.

The handlers are ``async``: each hands its lifecycle call to the thread pool once
(``_answer``), and its answer is checked and encoded back in the event loop. A plain
``def`` handler costs two hops (the call, then its answer's check), each a sizeable share
of a report's CPU."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, Request, status
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from search.remote import (
    BadReport,
    LeaseLost,
    RemoteError,
    RemoteTrials,
    StudyClosed,
    UnknownTrial,
)
from service.auth import ChangeableStudyDep
from service.deps import SettingsDep, TrialNumber
from service.errors import BadRequest, Conflict, HpsError, NotFound
from service.routes.studies import AUTH, CONFLICT, NOT_FOUND, UNDECODABLE, Responses
from service.schemas import ErrorPublic
from service.trial_schemas import (
    DecisionPublic,
    ObjectivePublic,
    TrialClaim,
    TrialClaimed,
    TrialComplete,
    TrialEnded,
    TrialFail,
    TrialLease,
    TrialReport,
)

router = APIRouter(prefix="/studies/{study_id}/trials", tags=["trials"], responses=AUTH)
T = TypeVar("T")
LEASE_LOST: Responses = {
    409: {
        "model": ErrorPublic,
        "description": "The lease is no longer current (the trial was reaped and re-delivered, "
        "the study was cancelled, the trial already ended): nothing changed",
    }
}
CALL: Responses = NOT_FOUND | UNDECODABLE | LEASE_LOST


async def remote_trials(request: Request) -> RemoteTrials:
    """The API process's one ``RemoteTrials`` (made on the first trial call; no I/O)."""
    state = request.app.state
    if getattr(state, "remote_trials", None) is None:
        state.remote_trials = RemoteTrials(
            db_url=state.settings.database_url,
            session_factory=state.session_factory,
            read_session_factory=state.read_session_factory,
        )
    trials: RemoteTrials = state.remote_trials
    return trials


RemoteDep = Annotated[RemoteTrials, Depends(remote_trials)]


async def _answer(call: Callable[[], T]) -> T:
    """Run a lifecycle call in the thread pool (it does the route's I/O), its refusals
    answered as our HTTP errors."""
    try:
        return await run_in_threadpool(call)
    except BadReport as exc:
        raise BadRequest(exc.field, exc.message, where="body") from None
    except (LeaseLost, StudyClosed) as exc:
        raise Conflict(exc.message) from None
    except UnknownTrial as exc:
        raise NotFound(exc.message) from None
    except RemoteError as exc:  # a new refusal without its own status yet
        raise HpsError(exc.message) from None


@router.post(
    "/claim",
    response_model=TrialClaimed,
    responses={
        204: {"description": "No slot free now: claim again after Retry-After seconds"},
        **NOT_FOUND,
        **UNDECODABLE,
        409: {
            "model": ErrorPublic,
            "description": "The study has ended, was cancelled, or trains a built-in model",
        },
    },
)
async def claim_trial(
    row: ChangeableStudyDep,
    remote: RemoteDep,
    settings: SettingsDep,
    body: Annotated[TrialClaim | None, Body()] = None,
) -> Any:
    """Claim the study's next trial: its parameters and a lease. Random, grid and qmc
    parameters are a pure function of (spec, slot), so a retried slot repeats its
    configuration and any number of clients run the same set."""
    client = body.client if body is not None else None
    claimed, spec = await _answer(
        lambda: (remote.claim(row.id, client=client), remote.spec(row.id))
    )
    if claimed is None:
        retry_after = str(max(1, math.ceil(settings.heartbeat_interval)))
        return Response(
            status_code=status.HTTP_204_NO_CONTENT, headers={"Retry-After": retry_after}
        )
    return TrialClaimed(
        study_id=claimed.study_id,
        number=claimed.number,
        slot=claimed.slot,
        params=claimed.params,
        lease=claimed.lease,
        heartbeat_s=settings.heartbeat_interval,
        grace_s=settings.grace_period,
        objective=ObjectivePublic(metric=spec.objective.metric, direction=spec.direction),
        loss_metric=spec.loss_metric,
    )


@router.post("/{number:int}/report", response_model=DecisionPublic, responses=CALL)
async def report_trial(
    row: ChangeableStudyDep, number: TrialNumber, report: TrialReport, remote: RemoteDep
) -> DecisionPublic:
    """Report an epoch's metrics (epoch 0: before any update, the true initial loss). The
    answer is the server's decision on them; a report also renews the lease, and the same
    epoch sent again answers the same decision and changes nothing."""
    decision = await _answer(
        lambda: remote.report(
            row.id, number, lease=report.lease, epoch=report.epoch, metrics=report.metrics
        )
    )
    return DecisionPublic(decision=decision.decision, reason=decision.reason)


@router.post("/{number:int}/heartbeat", response_model=DecisionPublic, responses=CALL)
async def heartbeat_trial(
    row: ChangeableStudyDep, number: TrialNumber, body: TrialLease, remote: RemoteDep
) -> DecisionPublic:
    """Renew the lease during a long epoch; answers the same decision body as a report."""
    decision = await _answer(lambda: remote.heartbeat(row.id, number, lease=body.lease))
    return DecisionPublic(decision=decision.decision, reason=decision.reason)


@router.post("/{number:int}/complete", response_model=TrialEnded, responses=CALL | CONFLICT)
async def complete_trial(
    row: ChangeableStudyDep, number: TrialNumber, body: TrialComplete, remote: RemoteDep
) -> TrialEnded:
    """End the trial; its value is ``metrics[objective.metric]``. Idempotent for the same
    lease."""
    ended = await _answer(
        lambda: remote.complete(row.id, number, lease=body.lease, metrics=body.metrics)
    )
    return TrialEnded(number=ended.number, state=ended.state, value=ended.value, retried=False)


@router.post("/{number:int}/fail", response_model=TrialEnded, responses=CALL)
async def fail_trial(
    row: ChangeableStudyDep, number: TrialNumber, body: TrialFail, remote: RemoteDep
) -> TrialEnded:
    """End the trial as failed. ``retry``: hand its slot back for another attempt (a client
    that was stopped, not one that crashed). Idempotent for the same lease."""
    ended = await _answer(
        lambda: remote.fail(
            row.id, number, lease=body.lease, reason=body.reason, retry=body.retry, log=body.log
        )
    )
    return TrialEnded(number=ended.number, state=ended.state, value=None, retried=ended.retried)


__all__ = ["router"]
