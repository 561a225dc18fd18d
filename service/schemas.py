"""API response schemas (apart from the ORM tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    computed_field,
    field_serializer,
    field_validator,
)

from search.initial_loss import initial_loss_off


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    @field_serializer("*", when_used="json", check_fields=False)
    def _utc(self, v: Any) -> Any:
        # Timestamps are stored as naive UTC; say so on the wire.
        if isinstance(v, datetime) and v.tzinfo is None:
            return v.isoformat() + "Z"
        return v


class TrialChecks(BaseModel):
    """The initial-loss check and early stopping of a trial. ``initial_loss``: its training
    loss before any update; ``expected_initial_loss``: an untrained network's (ln C, or 1
    on standardised regression targets); ``initial_loss_off``: the two are more than 10x
    apart (bad initialisation or unnormalised inputs?). ``stopped_early_at``: the epoch
    early stopping ended it at (a complete trial); ``best_epoch``: the epoch it kept."""

    initial_loss: float | None = None
    expected_initial_loss: float | None = None
    stopped_early_at: int | None = None
    best_epoch: int | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def initial_loss_off(self) -> bool:
        return initial_loss_off(self.initial_loss, self.expected_initial_loss)


class TrialCounts(BaseModel):
    """Attempts by state: a slot retried after its worker was lost counts once per attempt."""

    running: int = 0
    complete: int = 0
    pruned: int = 0
    fail: int = 0


class SlotCounts(BaseModel):
    """The budget's slots by how their last attempt ended (``done`` never exceeds
    ``n_trials``); ``lost_retried``: attempts that lost their worker (or were handed back
    by a stopping one) and whose slot was given back to run again."""

    done: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    lost_retried: int = 0


class DiagnosisPublic(BaseModel):
    """Bias/variance reading of a finished trial: errors are error rates (classification)
    or RMSE in the target's units (regression); ``baseline_error`` is the majority class's
    or the mean's on the dev split."""

    label: str
    train_error: float
    dev_error: float
    baseline_error: float
    gap: float
    remedies: list[str]


class BestTrial(TrialChecks):
    number: int
    value: float
    params: dict[str, Any]
    diagnosis: DiagnosisPublic | None = None


class HeldOutPublic(BaseModel):
    """The winner's one evaluation on the held-out test split, after the search ended:
    never used to choose. ``state``: pending (not yet), done, none (no complete trial) or
    failed (``metrics.error`` says why)."""

    state: str
    trial: int | None
    metrics: dict[str, Any] | None
    label: str = "held-out test set (scored once on the winner; never used to choose)"


class SlurmJobPublic(_Out):
    """The newest Slurm job array submitted for a study (``hpsearch slurm submit``), as
    recorded at submission: its job id, its number of tasks, when and by whom. Its tasks'
    states live in Slurm (``hpsearch slurm status``)."""

    job_id: str
    tasks: int
    submitted_at: datetime
    submitted_by: str


class StudyPublic(_Out):
    id: int
    name: str
    owner: str | None
    public: bool
    status: str
    spec: dict[str, Any]
    dataset: str
    dataset_id: int | None
    task: str
    sampler: str
    metric: str
    direction: str
    n_trials: int
    parallelism: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: TrialCounts
    slots: SlotCounts
    # Queued or running with budget left, nothing running, and no live worker able to serve
    # it (the user's own code: no attempt ended) for longer than the grace period.
    waiting: bool = False
    best: BestTrial | None
    test: HeldOutPublic
    model: str = "mlp"
    # model external: the metrics its ended trials reported, in the order first seen.
    metric_names: list[str] | None = None
    slurm_job: SlurmJobPublic | None = None


class StudyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # {"public": 0} is no bool

    public: bool


class StudiesPublic(BaseModel):
    data: list[StudyPublic]
    count: int


class LeaderboardRow(TrialChecks):
    rank: int
    number: int
    state: str
    value: float
    params: dict[str, Any]
    metrics: dict[str, Any]
    epochs_run: int
    duration_s: float | None
    diagnosis: DiagnosisPublic | None = None


class LeaderboardPublic(BaseModel):
    study_id: int
    metric: str
    direction: str
    task: str
    data: list[LeaderboardRow]
    test: HeldOutPublic


class TrialPublic(_Out, TrialChecks):
    study_id: int
    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    curves: dict[str, Any]
    epochs_run: int
    duration_s: float | None
    prune_reason: str | None
    started_at: datetime
    finished_at: datetime | None
    diagnosis: DiagnosisPublic | None = None
    # The epoch it went on after: its slot's checkpoint, saved when an earlier attempt was
    # stopped (SIGTERM); None when it trained from the start. ``curves`` start at epoch 0.
    resumed_from: int | None = None
    # Trained together with other trials as one stacked model (``worker --batch-trials``):
    # the stack's first trial number, kept after it left the stack early; None: alone.
    stack: int | None = None
    # A trial of the user's own code: who claimed it, and a failed one's output (its tail).
    client: str | None = None
    log: str | None = None


class WorkerPublic(_Out):
    id: int
    name: str
    host: str
    pid: int
    device: str
    status: str
    started_at: datetime
    last_seen: datetime
    study_id: int | None
    trial_number: int | None
    # The trial numbers it trains together now as one stacked model (``trial_number`` is
    # the first); None when it trains one trial or none.
    stack: list[int] | None = None

    @field_validator("stack", mode="before")
    @classmethod
    def _trial_numbers(cls, v: Any) -> Any:
        # A row whose stack is not a list of trial numbers shows none, never a 500.
        ok = isinstance(v, list) and all(isinstance(n, int) and not isinstance(n, bool) for n in v)
        return v if ok and v else None


class WorkersPublic(BaseModel):
    data: list[WorkerPublic]
    count: int


class ErrorPublic(BaseModel):
    """The body of every 404 and 409: what was not found, or what conflicts."""

    detail: str


class WorkersHealth(BaseModel):
    """``serve``'s local worker processes: started, running now, and given up after
    crashing at start-up again and again."""

    expected: int
    live: int
    given_up: int


class Health(BaseModel):
    """``workers`` only from a ``serve`` with local workers; ``detail`` says why a 503."""

    status: str
    database: str
    version: str
    workers: WorkersHealth | None = None
    detail: str | None = None


class TrialSummaryPublic(_Out, TrialChecks):
    """A trial as the leaderboard table shows it (no curves); ``rank`` is its place among
    the complete trials by the objective, None for trials that did not complete."""

    rank: int | None
    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    epochs_run: int
    duration_s: float | None
    reason: str | None
    started_at: datetime
    finished_at: datetime | None
    stack: int | None = None  # trained in a stack: its first trial number (as TrialPublic)


class TrialsPublic(BaseModel):
    study_id: int
    metric: str
    direction: str
    data: list[TrialSummaryPublic]
    count: int


class StudyChanges(BaseModel):
    """What changed since ``cursor``: pass the returned ``cursor`` back next time."""

    study: StudyPublic
    cursor: int
    finished: list[TrialSummaryPublic]
    running: list[TrialSummaryPublic]


class PlotAxis(BaseModel):
    name: str
    knob: str
    label: str
    kind: str
    log: bool
    choices: list[str]


class PlotPoints(BaseModel):
    """Column arrays over the ended trials, by trial number; ``state`` is C, P or F."""

    number: list[int]
    state: list[str]
    value: list[float | None]
    axes: dict[str, list[float | str | None]]
    labels: dict[str, list[str]]


class TrialCurvesPublic(BaseModel):
    number: int
    state: str
    value: float | None
    reason: str | None
    train_loss: list[float | None]
    dev_loss: list[float | None]
    objective: list[float | None]
    threshold: float | None
    # The user's own code (model external): the epochs its curves were reported at, and
    # (a trial's own page) every other reported metric's curve.
    epoch: list[int] | None = None
    others: dict[str, list[float | None]] | None = None


class StudyPlots(BaseModel):
    study_id: int
    metric: str
    direction: str
    divergence_factor: float
    axes: list[PlotAxis]
    points: PlotPoints
    curves: list[TrialCurvesPublic]
    cursor: int
    loss_metric: str | None = None  # model external: the loss the divergence rule watches


class ParamImportance(BaseModel):
    axis: str
    label: str
    importance: float


class StudyImportance(BaseModel):
    study_id: int
    complete: int
    min_trials: int
    data: list[ParamImportance]


class CompareSeries(BaseModel):
    study_id: int
    name: str
    metric: str
    direction: str
    number: list[int]
    best: list[float | None]


class ComparePublic(BaseModel):
    data: list[CompareSeries]


class DatasetColumn(BaseModel):
    name: str
    kind: str  # numeric | categorical
    dtype: str
    missing: int
    distinct: int | None = None  # categorical columns


class DatasetPublic(_Out):
    """An uploaded table. ``target_summary``: the class balance (classification) or the
    target's range, mean and standard deviation (regression)."""

    id: int
    name: str
    filename: str
    format: str
    size_bytes: int
    sha256: str
    target: str
    task: str
    task_inferred: bool
    impute: bool
    n_rows: int
    n_columns: int
    columns: list[DatasetColumn]
    target_summary: dict[str, Any]
    created_at: datetime


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int
