"""SQLAlchemy 2.0 typed mappings of the hps_* tables (schema changes go through migrations/).

- hps_studies: one row per submitted spec; ``claimed``/``running`` are the budget counters
  that workers move with atomic conditional UPDATEs; ``change_seq`` counts trial ends.
  ``request_key`` makes a retried submission return the study it already created.
- hps_trials: a compact record of each attempt at a budget slot, written by workers (state,
  value, params, metrics, curves: live while it runs), so reads never load Optuna's trials.
  ``slot`` is k in [0, n_trials); a slot whose attempt was lost or interrupted is marked
  ``retry_pending`` until the next claim takes it, and ``losses`` counts lost attempts.
  ``seq`` is the study's ``change_seq`` taken when the trial ended (the cursor of live
  pages). ``initial_loss`` next to ``expected_initial_loss`` is the initial-loss check;
  ``stopped_early_at`` and ``best_epoch`` record early stopping (a complete trial).
  A study of the user's own code (``model: external``) has its trials claimed over the
  REST trial API: each attempt holds a ``lease`` token that every call must show, and its
  ``curves`` carry an ``epoch`` list beside each reported metric's values.
- hps_workers: one row per worker process (registration and heartbeats, idle or busy);
  ``serves_study`` is the study it was started for (``--study``), NULL: any built-in study.
- hps_blobs: uploaded files, content-addressed by their sha256 (workers on any machine read
  a dataset from here and cache it by hash).
- hps_datasets: an uploaded table with its target and task, naming its bytes by sha256;
  ``summary`` describes its columns. A study names its dataset by ``hps_studies.dataset_id``.
- hps_models: the weights (and JSON config) of the best few complete trials of each study,
  kept while it runs so the winner never needs retraining; the others are dropped.
  ``hps_studies.test_*`` record the winner's one evaluation on the held-out test split.
- hps_api_keys: API keys; only a SHA-256 of each token is stored. ``user`` is whose key it
  is (studies are owned by users, so a user's keys can be rotated without losing them).
- hps_web_sessions: browser sign-ins made with a key (the cookie's hash); revoking the key
  deletes its sessions.
- hps_checkpoints: a built-in trial stopped for a retry (SIGTERM) leaves its training
  state here, one row per (study, slot), replaced by a later save; the slot's retry
  resumes from it (the same configuration: a new attempt, a new trial number). Dropped
  when the slot's last attempt ends, when its study is cancelled, and with its study.
  ``hps_trials.resumed_from`` is the epoch an attempt resumed from (migration 0011).
- Trials trained together (``worker --batch-trials``): ``hps_trials.stack`` is the first
  trial number of the stack an attempt trained in, ``hps_workers.stack`` the numbers a
  worker trains together now (migration 0012).
- hps_slurm_jobs: the Slurm job arrays submitted for a study (``hpsearch slurm submit``):
  job id, tasks, who and when, so ``slurm status``/``cancel`` and the study page find them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from search.initial_loss import initial_loss_off
from search.store._engine import utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# Study states.
QUEUED, RUNNING, COMPLETED, CANCELLED = "queued", "running", "completed", "cancelled"
ACTIVE_STUDY_STATES = (QUEUED, RUNNING)
FINISHED_STUDY_STATES = (COMPLETED, CANCELLED)
# Trial states (Optuna's names).
T_RUNNING, T_COMPLETE, T_PRUNED, T_FAIL = "RUNNING", "COMPLETE", "PRUNED", "FAIL"
T_LOST = "LOST"  # written by hpsearch before 0.2 only (a reaper now finishes in one step)
# Test-set evaluation of a finished study's winner (hps_studies.test_state; NULL: not yet).
TEST_CLAIMED, TEST_DONE, TEST_NONE = "claimed", "done", "none"
TEST_FAILED = "failed"
# Worker states.
W_IDLE, W_BUSY, W_STOPPED, W_LOST = "idle", "busy", "stopped", "lost"


class StudyRow(Base):
    __tablename__ = "hps_studies"
    __table_args__ = (
        Index("ix_hps_studies_owner", "owner", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    optuna_study_name: Mapped[str] = mapped_column(String(64), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    dataset: Mapped[str] = mapped_column(String(64))
    sampler: Mapped[str] = mapped_column(String(32))
    metric: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(16))
    n_trials: Mapped[int] = mapped_column(Integer)
    parallelism: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True, default=QUEUED)
    claimed: Mapped[int] = mapped_column(Integer, default=0)
    running: Mapped[int] = mapped_column(Integer, default=0)
    change_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    request_key: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    task: Mapped[str] = mapped_column(String(16), server_default="classification")
    dataset_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    test_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    test_claimed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    test_trial: Mapped[int | None] = mapped_column(Integer, nullable=True)
    test_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The user who submitted it (NULL: submitted with auth off; only admins see those).
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    public: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The spec's model; trials of ``external`` ones are claimed over the REST trial API.
    model: Mapped[str] = mapped_column(String(16), default="mlp", server_default="mlp")
    # An external study's reported metrics, in the order first seen (its table's columns).
    metric_names: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)


class TrialRow(Base):
    __tablename__ = "hps_trials"
    __table_args__ = (
        Index("ix_hps_trials_leaderboard", "study_id", "state", "value"),
        Index("ix_hps_trials_number", "study_id", "number", unique=True),
        Index("ix_hps_trials_heartbeat", "state", "heartbeat_at"),
        Index("ix_hps_trials_seq", "study_id", "seq"),
        Index("ix_hps_trials_slot", "study_id", "slot"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("hps_studies.id", ondelete="CASCADE"))
    number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    optuna_trial_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default=T_RUNNING)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    curves: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    epochs_run: Mapped[int] = mapped_column(Integer, default=0)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    worker_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    seq: Mapped[int | None] = mapped_column(Integer, nullable=True)  # change cursor at its end
    slot: Mapped[int | None] = mapped_column(Integer, nullable=True)
    losses: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    retry_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The initial-loss check (search.initial_loss) and early stopping (migration 0006).
    initial_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    expected_initial_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    stopped_early_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    best_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # A remote attempt (migration 0008): the client's lease, who it is, its output's tail.
    lease: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client: Mapped[str | None] = mapped_column(String(200), nullable=True)
    log: Mapped[str | None] = mapped_column(Text, nullable=True)
    resumed_from: Mapped[int | None] = mapped_column(Integer, nullable=True)  # its epoch (0011)
    # Trained in a stack (worker --batch-trials): the stack's first trial number (0012).
    stack: Mapped[int | None] = mapped_column(Integer, nullable=True)

    @property
    def initial_loss_off(self) -> bool:
        return initial_loss_off(self.initial_loss, self.expected_initial_loss)


class WorkerRow(Base):
    __tablename__ = "hps_workers"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="idle", index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    study_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trial_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The only study it claims from (``worker --study``); NULL: any built-in study (0009).
    serves_study: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The trial numbers it trains together now, as one stacked model (0012); NULL: one.
    stack: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)


class BlobRow(Base):
    __tablename__ = "hps_blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class DatasetRow(Base):
    __tablename__ = "hps_datasets"
    __table_args__ = (
        Index(
            "ix_hps_datasets_content", "owner", "sha256", "target", "task", "impute", unique=True
        ),
        Index("ix_hps_datasets_name", "owner", "name", unique=True),
        # NULLs never collide above: one name among the datasets uploaded with auth off.
        Index(
            "ix_hps_datasets_name_unowned",
            "name",
            unique=True,
            sqlite_where=text("owner IS NULL"),
            postgresql_where=text("owner IS NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    # Who uploaded it (NULL: uploaded with auth off). Only its owner and admins see it.
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("hps_blobs.sha256"))
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(Integer)
    target: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(16))
    task_inferred: Mapped[bool] = mapped_column(Boolean)
    impute: Mapped[bool] = mapped_column(Boolean)
    n_rows: Mapped[int] = mapped_column(Integer)
    n_columns: Mapped[int] = mapped_column(Integer)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def public(self) -> bool:
        """Datasets are never public (service.auth reads studies and datasets alike)."""
        return False


class ModelRow(Base):
    __tablename__ = "hps_models"
    __table_args__ = (
        Index("ix_hps_models_study", "study_id", "value"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("hps_studies.id", ondelete="CASCADE"))
    trial_id: Mapped[int] = mapped_column(
        ForeignKey("hps_trials.id", ondelete="CASCADE"), unique=True
    )
    number: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    weights: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ApiKeyRow(Base):
    __tablename__ = "hps_api_keys"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    user: Mapped[str] = mapped_column(String(64), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class WebSessionRow(Base):
    __tablename__ = "hps_web_sessions"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[int] = mapped_column(
        ForeignKey("hps_api_keys.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class SlurmJobRow(Base):
    __tablename__ = "hps_slurm_jobs"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(
        ForeignKey("hps_studies.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[str] = mapped_column(String(64))  # sbatch --parsable: "123" or "123;cluster"
    array_size: Mapped[int] = mapped_column(Integer)
    submitted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    submitted_by: Mapped[str] = mapped_column(String(64))


class CheckpointRow(Base):
    __tablename__ = "hps_checkpoints"

    study_id: Mapped[int] = mapped_column(
        ForeignKey("hps_studies.id", ondelete="CASCADE"), primary_key=True
    )
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer)  # the last epoch it holds; a retry goes on after
    sha256: Mapped[str] = mapped_column(String(64))  # of ``data``, checked when read
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# The per-trial path's tables, for Core INSERTs and UPDATEs: a statement on the table skips
# the ORM's bulk-persistence layer, about 0.2 ms of CPU a statement, ~10 statements a trial.
STUDIES = cast(Table, StudyRow.__table__)
TRIALS = cast(Table, TrialRow.__table__)
WORKERS = cast(Table, WorkerRow.__table__)
