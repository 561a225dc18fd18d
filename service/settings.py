"""One typed settings object, read from ``HPS_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
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
    heartbeat_interval: float = Field(2.0, gt=0, description="seconds between heartbeats")
    grace_period: float = Field(30.0, gt=0, description="heartbeat age after which a trial is lost")
    poll_interval: float = Field(0.5, gt=0, description="idle worker's sleep between claims")
    url: str = Field("http://127.0.0.1:8000", description="server URL used by the CLI")
    log_level: str = Field("INFO", description="log level of serve and worker processes")


__all__ = ["Settings"]
