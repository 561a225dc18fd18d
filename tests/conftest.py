"""Shared fixtures: every storage-dependent test runs on SQLite and on PostgreSQL.

PostgreSQL tests use a throwaway database created on the server named by
``HPS_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``) and
dropped afterwards. They never skip: an unreachable server fails them loudly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

# One torch thread per test process (before anything imports torch). The Makefile runs two
# test processes on CI's two cores, beside the servers and workers they start; torch's
# default of a thread per core oversubscribes them, and its OpenMP threads then wait on
# each other: a stacked training test took 81 s in the suite and 9 s alone. The worker
# processes tests start get one thread the same way (``HPS_THREADS`` in tests/processes.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")

PG_ADMIN_URL = os.environ.get(
    "HPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ["sqlite", "postgresql"]


def _psycopg_url(url: str) -> str:
    u = make_url(url)
    return u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def _forget(url: str) -> None:
    """Dispose this process's cached engines for ``url`` (so the database can be dropped)."""
    from search.store import get_engine, normalize_url

    get_engine(url).dispose()
    get_engine(url, read_only=True).dispose()
    url = normalize_url(url)
    try:
        from search.studies import _STORAGES
    except ImportError:
        return
    storage = _STORAGES.pop(url, None)
    if storage is not None:
        storage.engine.dispose()


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    # A test that asks for a migrated database gets a copy of this process's migrated
    # template (CREATE DATABASE ... TEMPLATE): the same tables as migrating it, without
    # running Alembic and Optuna's set-up again for every test (about a second each).
    template = None
    if "migrated_url" in request.fixturenames:
        template = request.getfixturevalue("_migrated_templates").postgresql()
    with _postgres_database(template) as url:
        yield url


@contextlib.contextmanager
def _postgres_database(template: str | None = None) -> Iterator[str]:
    admin = create_engine(_psycopg_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"hps_test_{uuid.uuid4().hex[:12]}"
    source = f' TEMPLATE "{template}"' if template else ""
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{source}'))
    except Exception as exc:  # never skip: PostgreSQL is part of the product
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} (HPS_TEST_POSTGRES_URL) unusable: {exc}")
    url = make_url(_psycopg_url(PG_ADMIN_URL)).set(database=name).render_as_string(False)
    try:
        yield url
    finally:
        _forget(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class MigratedTemplates:
    """One migrated database per backend per test process, made on first use, that
    ``migrated_url`` copies: a SQLite file copied, a PostgreSQL template database."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._sqlite: Path | None = None
        self._postgres: contextlib.ExitStack | None = None
        self._postgres_name = ""

    def sqlite(self) -> Path:
        if self._sqlite is None:
            from service.runner import upgrade_db

            path = self._directory / "template.db"
            url = f"sqlite:///{path}"
            upgrade_db(url)
            _forget(url)
            with contextlib.closing(sqlite3.connect(path)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all of it in the one file
            self._sqlite = path
        return self._sqlite

    def postgresql(self) -> str:
        if self._postgres is None:
            from service.runner import upgrade_db

            stack = contextlib.ExitStack()
            url = stack.enter_context(_postgres_database())
            upgrade_db(url)
            _forget(url)  # a template must have no open connection while it is copied
            self._postgres, self._postgres_name = stack, str(make_url(url).database)
        return self._postgres_name

    def close(self) -> None:
        if self._postgres is not None:
            self._postgres.close()


@pytest.fixture(scope="session")
def _migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedTemplates]:
    templates = MigratedTemplates(tmp_path_factory.mktemp("templates"))
    yield templates
    templates.close()


@pytest.fixture(scope="session")
def pgbouncer_daemon() -> Iterator[object]:
    """One PgBouncer (transaction pooling) in front of the test server for the whole run
    (``tests/pgbouncer.py``); a missing pgbouncer fails the tests, never skips them."""
    from tests.pgbouncer import pgbouncer

    try:
        with pgbouncer(_psycopg_url(PG_ADMIN_URL)) as bouncer:
            yield bouncer
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def pgbouncer_url(postgres_url: str, pgbouncer_daemon: object) -> Iterator[str]:
    """A throwaway PostgreSQL database reached through PgBouncer in transaction mode."""
    from tests.pgbouncer import PgBouncer

    assert isinstance(pgbouncer_daemon, PgBouncer)
    url = pgbouncer_daemon.url_for(postgres_url)
    yield url
    _forget(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'hps.db'}"
    yield url
    _forget(url)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each backend."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def migrated_url(db_url: str, _migrated_templates: MigratedTemplates) -> str:
    """A database with the hps_* tables migrated and Optuna's tables created (a copy of
    the process's migrated template; ``postgres_url`` makes the PostgreSQL copy)."""
    if db_url.startswith("sqlite"):
        shutil.copyfile(_migrated_templates.sqlite(), make_url(db_url).database or "")
    return db_url


@pytest.fixture(scope="module", params=BACKENDS)
def module_migrated_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _migrated_templates: MigratedTemplates,
) -> Iterator[str]:
    """A migrated database on each backend shared by a whole test module (for read-only
    tests on data the module writes once)."""
    if request.param == "postgresql":
        with _postgres_database(_migrated_templates.postgresql()) as url:
            yield url
        return
    path = tmp_path_factory.mktemp("db") / "hps.db"
    shutil.copyfile(_migrated_templates.sqlite(), path)
    url = f"sqlite:///{path}"
    yield url
    _forget(url)


CHROMIUM = os.environ.get("HPS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Debian chromium for the whole run, driven by Playwright (which never
    downloads a browser here). ``make test`` installs chromium; a missing one fails the
    browser tests, never skips them: the pages are part of the product."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"chromium not found at {CHROMIUM} (HPS_TEST_CHROMIUM); `make test` installs it"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


# The slowest files (process-level tests, browsers), longest first as measured (pytest
# --durations, 2 processes): with --dist loadfile each xdist worker takes the next file as
# it finishes one, so a long file picked up last would leave the other core idle for
# minutes at the end. The Makefile passes --no-loadscope-reorder: by default xdist orders
# files by their number of tests, which put the one-test process files last.
SLOW_FIRST = (
    "tests/search/test_concurrency.py",
    "tests/search/test_worker_faults.py",
    "tests/service/test_db_outage.py",
    "tests/service/test_slurm.py",
    "tests/service/test_pages_browser.py",
    "tests/search/test_crash_recovery.py",
    "tests/bench/test_remote.py",
    "tests/service/test_e2e.py",
    "tests/search/test_worker_signals.py",
    "tests/search/test_preemption.py",
    "tests/search/test_stacks_processes.py",
    "tests/search/test_stacks.py",
    "tests/service/test_own_code_browser.py",
    "tests/service/test_under_load.py",
    "tests/service/test_schema.py",
    "tests/client/test_examples.py",
    "tests/service/test_serve_workers.py",
    "tests/service/test_datasets_e2e.py",
    "tests/client/test_lifecycle_processes.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).resolve().parent.parent
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}

    def key(item: pytest.Item) -> int:
        return rank.get(item.path.relative_to(root).as_posix(), len(SLOW_FIRST))

    items.sort(key=key)  # stable: the order within a file, and of the rest, is kept
