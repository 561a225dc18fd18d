"""create_app(settings): the FastAPI application (it validates, stores and answers reads;
it never trains). A background task recovers trials whose worker died."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable

from fastapi import APIRouter, FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.telemetry import TelemetryConfig
from sqlalchemy import text

from search.store import OUTAGE, access_engine, is_unavailable, make_session_factory
from service import pages
from service.errors import install_error_handlers
from service.middleware import install_middleware
from service.read_cache import read_cache, summary_cache
from service.routes import datasets, health, plots, studies, trials, workers
from service.settings import Settings
from service.supervisor import LocalWorkers

log = logging.getLogger(__name__)
# FastAPI's native OpenTelemetry, on only where the environment configures a provider: when
# on, it looks each of these up in os.environ on every request (three failed lookups, a
# tenth of the API's CPU under 50 pollers), though hpsearch sets no provider itself.
OTEL_SWITCHES = (
    "OTEL_PYTHON_TRACER_PROVIDER",
    "OTEL_PYTHON_METER_PROVIDER",
    "OTEL_PYTHON_LOGGER_PROVIDER",
    "FASTAPI_OTEL_AUTO_CONFIGURE",
)


def _telemetry() -> TelemetryConfig:
    on = any(os.environ.get(name) for name in OTEL_SWITCHES)
    return {"tracing": on, "metrics": on, "logs": on, "operation_spans": on}


async def _recovery_loop(app: FastAPI) -> None:
    """Reap lost trials, for as long as the app runs. While the database is away a pass
    only asks whether it is back: one line when it goes, one when it returns (``OUTAGE``),
    no traceback per pass; and no reaping within a grace period after it returns, when
    every worker's heartbeat is as old as the outage (``ReapSchedule``)."""
    from search.lifecycle import ReapSchedule, reap_every

    settings: Settings = app.state.settings
    schedule = ReapSchedule(settings.grace_period)
    away = False
    while True:
        await asyncio.sleep(reap_every(settings.grace_period))
        if not schedule.due():
            continue
        try:
            await asyncio.to_thread(_probe if away else _reap, app)
            away = False
            OUTAGE.succeeded()  # logged once, when an outage is over
        except Exception as exc:
            if not is_unavailable(exc):
                log.exception("recovering lost trials failed")
                continue
            away = True
            OUTAGE.failed(exc)  # logged once, when an outage starts


def _reap(app: FastAPI) -> None:
    from search.lifecycle import reap_lost_trials

    settings: Settings = app.state.settings
    reap_lost_trials(
        session_factory=app.state.session_factory,
        grace_s=settings.grace_period,
        max_retries=settings.max_retries,
    )


def _probe(app: FastAPI) -> None:
    """Raises while the database is away."""
    with app.state.read_session_factory() as session:
        session.execute(text("SELECT 1"))


def create_app(
    settings: Settings | None = None,
    *,
    recover: bool = True,
    on_submit: Callable[[], None] | None = None,
    local_workers: LocalWorkers | None = None,
) -> FastAPI:
    """The API and pages. ``on_submit`` is called after each study is stored (``serve``
    wakes its idle local workers with it, instead of their next poll). ``local_workers``:
    ``serve``'s worker processes, whose counts ``/health`` reports."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_recovery_loop(app)) if recover else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="hpsearch",
        version=health.VERSION,
        description="Self-hosted hyperparameter search: submit specs, watch leaderboards.",
        lifespan=lifespan,
        telemetry=_telemetry(),
    )
    app.state.settings = settings
    app.state.session_factory = make_session_factory(settings.database_url)
    app.state.on_submit = on_submit
    app.state.local_workers = local_workers
    app.state.caches = {}  # name -> ComputeCache (service.routes.plots)
    app.state.read_cache = read_cache()  # service.read_cache: answers by study version
    app.state.study_summaries = summary_cache()
    app.state.read_session_factory = make_session_factory(settings.database_url, read_only=True)
    app.state.access_engine = access_engine(settings.database_url)  # service.auth's reads
    install_error_handlers(app)

    api = APIRouter(prefix="/api/v1")
    api.include_router(studies.router)
    api.include_router(trials.router)
    api.include_router(datasets.router)
    api.include_router(plots.router)
    api.include_router(workers.router)
    api.include_router(health.router)
    app.include_router(api)
    app.include_router(health.router)
    app.include_router(pages.router)
    # Level 5: nearly the ratio of 9 at a third of the time on large plot data.
    app.add_middleware(GZipMiddleware, minimum_size=1000, compresslevel=5)
    install_middleware(app, settings)
    return app


__all__ = ["create_app"]
