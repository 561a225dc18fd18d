"""The REST trial API's request and response schemas (``service.routes.trials``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from search.spec import NAME_PATTERN, RESERVED_METRIC

MetricName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


def _metrics(metrics: Any) -> Any:
    if isinstance(metrics, dict) and RESERVED_METRIC in metrics:
        raise ValueError(f"{RESERVED_METRIC!r} is the report's own field, not a metric name")
    return metrics


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


# A reported value: a JSON number, NaN/Infinity, or the text of one ("nan", "inf", "1e-3").
MetricValue = Annotated[float, Field(allow_inf_nan=True), BeforeValidator(_number)]
Lease = Annotated[str, Field(min_length=1, max_length=64, description="from the claim")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrialClaim(_Body):
    client: str | None = Field(
        None, max_length=200, description="who claims (shown on the trial's page)"
    )


class ObjectivePublic(BaseModel):
    metric: str
    direction: str


class TrialClaimed(BaseModel):
    """A claimed trial: train with ``params``, show ``lease`` on every call, and report or
    heartbeat at least every ``heartbeat_s`` (a lease not renewed within ``grace_s`` is
    reaped and its slot retried)."""

    study_id: int
    number: int
    slot: int
    params: dict[str, Any]
    lease: str
    heartbeat_s: float
    grace_s: float
    objective: ObjectivePublic
    loss_metric: str


Metrics = Annotated[dict[MetricName, MetricValue], Field(max_length=64), BeforeValidator(_metrics)]


class TrialReport(_Body):
    lease: Lease
    epoch: int = Field(ge=0, le=1_000_000, description="0: before any update")
    metrics: Metrics


class TrialLease(_Body):
    lease: Lease


class TrialComplete(_Body):
    lease: Lease
    metrics: Metrics


class TrialFail(_Body):
    lease: Lease
    reason: str = Field(min_length=1, max_length=2000, description="kept: its first 500 chars")
    retry: bool = Field(False, description="hand the slot back for another attempt")
    log: str | None = Field(None, description="the tail of the output; the last 64 KiB kept")


class DecisionPublic(BaseModel):
    decision: Literal["continue", "prune"]
    reason: str | None = None


class TrialEnded(BaseModel):
    number: int
    state: str
    value: float | None
    retried: bool
