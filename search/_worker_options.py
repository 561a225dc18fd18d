"""A worker's settings, and the reasons it records on a trial it stops."""

from __future__ import annotations

from dataclasses import dataclass

from search._batch_option import BatchTrials, parse_batch_trials
from search.lifecycle import DEFAULT_MAX_RETRIES

STOPPED_REASON = "interrupted (worker stopped)"
KILLED_REASON = "interrupted (worker killed)"


class WorkerKilled(KeyboardInterrupt):
    """A second SIGTERM, or a SIGINT: record the running trial as interrupted and exit."""


@dataclass(frozen=True)
class WorkerOptions:
    db_url: str
    name: str = ""
    device: str = "cpu"
    threads: int | None = None
    study_id: int | None = None
    max_trials: int | None = None
    heartbeat_interval: float = 2.0
    grace_period: float = 30.0
    poll_interval: float = 0.2
    max_retries: int = DEFAULT_MAX_RETRIES
    outage_s: float = 600.0  # how long the database may be away before the worker gives up
    exit_when_idle: bool = False  # stop once no study has budget left (tests, batch jobs)
    # Trials of one MLP or CNN study claimed at once and trained as one stacked model (1: alone;
    # "auto": by the network's size and the device, ``models.auto_stack_size``).
    batch_trials: BatchTrials = 1

    def __post_init__(self) -> None:
        if self.max_trials is not None and self.max_trials < 1:
            raise ValueError(f"max_trials must be >= 1, got {self.max_trials}")
        if not 0 < self.heartbeat_interval < self.grace_period:
            raise ValueError(
                f"grace_period ({self.grace_period}) must be longer than heartbeat_interval "
                f"({self.heartbeat_interval}) > 0, or live trials would be reaped"
            )
        if self.outage_s <= 0:
            raise ValueError(f"outage_s must be > 0, got {self.outage_s}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        parse_batch_trials(self.batch_trials)  # ValueError naming a bad one


__all__ = [
    "KILLED_REASON",
    "STOPPED_REASON",
    "WorkerKilled",
    "WorkerOptions",
]
