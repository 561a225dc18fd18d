"""One typed settings object, read from ``HPS_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HPS_", extra="ignore")

    database_url: str = Field(
        "sqlite:///hpsearch.db",
        description="SQLAlchemy URL: sqlite:///file.db or postgresql+psycopg://user@host/db",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(2, ge=0, le=256, description="local worker processes started by serve")
    device: str = Field("auto", description="worker device: auto | cpu | cuda | cuda:N")
    threads: int | None = Field(None, ge=1, description="torch threads per worker")
    batch_trials: str = Field(
        "1",
        description="trials of one MLP or CNN study a worker trains together as one stacked model: "
        "1 (each alone), up to 256, or auto (by the network's size and the device)",
    )
    heartbeat_interval: float = Field(2.0, gt=0, description="seconds between heartbeats")
    grace_period: float = Field(
        30.0,
        gt=0,
        description="heartbeat age after which a trial or worker is lost; a study no live "
        "worker can serve for this long shows 'waiting for a worker'",
    )
    poll_interval: float = Field(
        0.2, gt=0, description="idle worker's sleep between looks for work (a read: cheap)"
    )
    db_outage_s: float = Field(
        600.0,
        gt=0,
        description="how long a worker waits for an unavailable database (refused, "
        "restarting, disk full) before it gives up; its trial keeps training meanwhile",
    )
    url: str = Field("http://127.0.0.1:8000", description="server URL used by the CLI")
    log_level: str = Field("INFO", description="log level of serve and worker processes")
    max_retries: int = Field(
        2, ge=0, le=100, description="retries of a budget slot whose worker was lost"
    )
    max_params: int = Field(
        50_000_000, ge=1, description="largest network (parameters) a spec may ask for"
    )
    max_upload_mb: float = Field(
        200.0, gt=0, description="largest dataset upload in MB (1e6 bytes); larger: 413"
    )
    max_trials: int = Field(10_000, ge=1, le=10_000, description="most trials one study may ask")
    max_epochs: int = Field(1_000, ge=1, le=1_000, description="most epochs one trial may run")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="largest request body (uploads: HPS_MAX_UPLOAD_MB)"
    )
    max_spec_bytes: int = Field(65_536, ge=1024, description="largest submitted spec (JSON)")
    auth: Literal["on", "off"] = Field(
        "off",
        description="on: every request needs an API key (or a signed-in browser), users see "
        "their own studies; off: no keys, allowed only on a loopback host",
    )
    session_hours: float = Field(
        168.0, gt=0, le=24 * 365, description="how long a browser sign-in lasts"
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="text, or json: one JSON object per log line"
    )

    @field_validator("batch_trials")
    @classmethod
    def _batch_trials(cls, value: str) -> str:
        from search._batch_option import parse_batch_trials

        return str(parse_batch_trials(value))

    @model_validator(mode="after")
    def _grace_outlasts_heartbeat(self) -> Settings:
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(
                f"HPS_GRACE_PERIOD ({self.grace_period:g}) must be longer than "
                f"HPS_HEARTBEAT_INTERVAL ({self.heartbeat_interval:g}), or live trials "
                "would be reaped"
            )
        return self


__all__ = ["Settings"]
