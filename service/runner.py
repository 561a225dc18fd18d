"""Process entry points behind ``hpsearch serve``, ``hpsearch worker`` and ``db upgrade``."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from service.settings import Settings
from service.supervisor import Supervisor

log = logging.getLogger("hpsearch")


def _logging() -> None:
    from service.logs import configure

    configure(Settings())


def upgrade_db(db_url: str | None = None) -> str:
    """Migrate the hps_* tables and create Optuna's tables; returns the URL used."""
    import migrations
    from search.studies import get_storage

    url = db_url or Settings().database_url
    migrations.upgrade(url)
    get_storage(url)  # Optuna creates/checks its own tables
    print(f"database ready: {_redact(url)} (hps schema {migrations.current_revision(url)})")
    return url


def check_db(db_url: str | None = None) -> int:
    """Print every disagreement between Optuna's trials and hps_trials; their number."""
    from search.agreement import check_agreement
    from search.store import make_session_factory, session_scope

    url = db_url or Settings().database_url
    with session_scope(make_session_factory(url, read_only=True)) as session:
        found = check_agreement(session=session)
    for disagreement in found:
        print(disagreement)
    print(f"{len(found)} disagreement(s) between Optuna and hpsearch in {_redact(url)}")
    return len(found)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


WORKER_CONNECTIONS = 2  # database connections a worker process holds at most


STOPPED_WITH_WORK_LEFT = 143  # an --exit-when-idle worker stopped by SIGTERM (as the agent)


def run_worker_cli(
    *,
    db_url: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    study_id: int | None = None,
    max_trials: int | None = None,
    name: str | None = None,
    exit_when_idle: bool = False,
    batch_trials: str | None = None,
) -> None:
    """Run one worker in this process until SIGTERM/SIGINT, ``max_trials`` or (with
    ``exit_when_idle``) the end of the studies it serves."""
    _logging()
    from models import device_name
    from search._batch_option import parse_batch_trials
    from search.store import limit_connections
    from search.worker import DatabaseGone, Worker, WorkerOptions

    # Its main thread and its heartbeat, one connection each: a hundred workers fit one
    # PostgreSQL server (or PgBouncer's client slots) beside the API.
    limit_connections(WORKER_CONNECTIONS, role="worker")
    settings = Settings()
    url = db_url or settings.database_url
    try:
        resolved = device_name(device or settings.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    _wait_for_schema(url, settings)
    n_threads = threads or settings.threads or _default_threads(url, settings.grace_period)
    worker = Worker(
        WorkerOptions(
            db_url=url,
            name=name or "",
            device=resolved,
            threads=n_threads,
            study_id=study_id,
            max_trials=max_trials,
            heartbeat_interval=settings.heartbeat_interval,
            grace_period=settings.grace_period,
            poll_interval=settings.poll_interval,
            max_retries=settings.max_retries,
            outage_s=settings.db_outage_s,
            exit_when_idle=exit_when_idle,
            batch_trials=parse_batch_trials(batch_trials or settings.batch_trials),
        )
    )
    worker.install_signal_handlers()
    log.info("worker on %s with %d threads", resolved, n_threads)
    try:
        n = worker.run()
    except KeyboardInterrupt:
        log.info("worker interrupted")
        sys.exit(130)
    except DatabaseGone as exc:
        log.error("%s", exc)
        sys.exit(3)
    log.info("worker stopped after %d trials", n)
    if exit_when_idle and worker.stop.event.is_set():
        # Stopped by a signal before its studies ended: not the batch job's "nothing left"
        # (exit 0), after which a Kubernetes Job starts no more pods; 128 + SIGTERM.
        sys.exit(STOPPED_WITH_WORK_LEFT)


def _wait_for_schema(url: str, settings: Settings) -> None:
    """A worker started beside the migration (docker compose, a Kubernetes migration Job)
    waits until the hps_* tables are at this code's head revision, up to HPS_DB_OUTAGE_S,
    instead of failing on a missing table; a schema newer than this code is an error."""
    import time

    import migrations
    from search.store import is_unavailable

    known = migrations.known_revisions()
    deadline, said = time.monotonic() + settings.db_outage_s, False
    while True:
        try:
            current = migrations.current_revision(url) or "missing"
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            current = "unavailable"
        if current == known[-1]:
            if said:
                log.warning("the database is migrated (hps schema %s); starting", current)
            return
        if current not in (*known, "missing", "unavailable"):
            print(
                f"error: the database's hps schema is {current}, newer than this hpsearch "
                f"knows (its newest is {known[-1]}): upgrade hpsearch",
                file=sys.stderr,
            )
            sys.exit(2)
        if time.monotonic() > deadline:
            print(
                f"error: the database's hps schema is still {current} after "
                f"{settings.db_outage_s:g} s (HPS_DB_OUTAGE_S); run `hpsearch db upgrade`",
                file=sys.stderr,
            )
            sys.exit(3)
        if not said:
            log.warning(
                "waiting for the database to be migrated (hps schema %s, this worker needs "
                "%s): `hpsearch db upgrade` or `hpsearch serve` migrates it",
                current,
                known[-1],
            )
            said = True
        time.sleep(min(1.0, settings.poll_interval * 5))


def _default_threads(url: str, grace_s: float) -> int:
    """Cores divided by the worker processes on this machine (live ones plus this one)."""
    import socket

    from search.store import count_live_workers, make_session_factory, session_scope

    with session_scope(make_session_factory(url)) as session:
        others = count_live_workers(
            session=session, host=socket.gethostname(), seen_within_s=grace_s
        )
    return max(1, (os.cpu_count() or 1) // (others + 1))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) can be reached from this machine only."""
    import ipaddress

    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def check_exposure(host: str, auth: str, insecure: bool) -> str | None:
    """Why serving ``host`` with this auth is refused (None: go ahead)."""
    if auth == "on" or is_loopback(host):
        return None
    if insecure:
        log.warning(
            "INSECURE: serving %s with HPS_AUTH=off (--insecure): anyone who can reach this "
            "port can read, submit and cancel every study",
            host,
        )
        return None
    return (
        f"refusing to serve {host} with HPS_AUTH=off: anyone who can reach it could read and "
        "change every study. Set HPS_AUTH=on and make a key with `hpsearch keys create NAME "
        "--admin`, or pass --insecure to serve it open anyway"
    )


def serve(
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    insecure: bool = False,
    batch_trials: str | None = None,
) -> None:
    """Migrate, start ``workers`` local worker processes (restarted when they crash:
    ``service.supervisor``), run the API until Ctrl-C/SIGTERM, then stop the workers (each
    ends its trial as interrupted, so none stays RUNNING). A non-loopback host needs
    HPS_AUTH=on, or ``insecure``."""
    _logging()
    from service.app import create_app

    settings = Settings()
    host = host or settings.host
    port = port or settings.port
    refusal = check_exposure(host, settings.auth, insecure)
    if refusal is not None:
        print(f"error: {refusal}", file=sys.stderr)
        sys.exit(2)
    n_workers = settings.workers if workers is None else workers
    url = upgrade_db(settings.database_url)
    if settings.auth == "on":
        _warn_if_no_keys(url)
    threads = settings.threads or max(1, (os.cpu_count() or 1) // max(n_workers, 1))
    # Workers inherit "ignore SIGUSR1" until they install their wake-up handler, so a study
    # submitted while they start cannot kill them (its default action).
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    batch = batch_trials or settings.batch_trials
    local = Supervisor(n_workers, lambda i: _spawn_worker(url, threads, i, batch))
    signal.signal(signal.SIGTERM, _raise_interrupt)  # until uvicorn installs its own
    try:
        local.start()
        config = uvicorn.Config(
            create_app(
                settings,
                on_submit=local.wake if n_workers else None,
                local_workers=local if n_workers else None,
            ),
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            log_config=None,  # service.logs configured every logger (request ids, JSON)
            access_log=False,  # service.middleware logs each request with its request id
        )
        server = _Server(config, local)
        server.run()
        if not server.started:  # the port taken, say: as uvicorn.run, exit 3
            sys.exit(STARTUP_FAILURE)
    except KeyboardInterrupt:
        pass
    finally:
        local.stop()


class _Server(uvicorn.Server):
    """uvicorn, whose SIGTERM/SIGINT also stops the local workers at once (while uvicorn
    finishes the requests under way) and ends their restarts."""

    def __init__(self, config: uvicorn.Config, local: Supervisor) -> None:
        super().__init__(config)
        self.local = local

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.local.request_stop()
        super().handle_exit(sig, frame)


def _warn_if_no_keys(url: str) -> None:
    from search.store import list_keys, make_session_factory, session_scope

    with session_scope(make_session_factory(url, read_only=True)) as session:
        if not list_keys(session=session):
            log.warning(
                "HPS_AUTH=on and no API keys yet: every request will be refused until you "
                "make one with `hpsearch keys create NAME --admin`"
            )


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _spawn_worker(url: str, threads: int, index: int, batch: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "service.cli", "worker", "--db", url, "--threads", str(threads)]
    cmd += ["--name", f"local-{index}", "--batch-trials", batch]
    return subprocess.Popen(cmd)


__all__ = ["check_db", "run_worker_cli", "serve", "upgrade_db"]
