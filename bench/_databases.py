"""A throwaway database for a benchmark: a SQLite file in a temporary directory, or a
fresh PostgreSQL database on a server (created, migrated, dropped afterwards)."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from search import store
from service.runner import upgrade_db

PG_ADMIN = os.environ.get("HPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")


@contextlib.contextmanager
def database(backend: str, pg_admin: str = PG_ADMIN) -> Iterator[str]:
    """The URL of a migrated, empty database of ``backend``, gone afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="hps-bench-") as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            _upgrade(url)
            yield url
        return
    admin_url = make_url(pg_admin).set(drivername="postgresql+psycopg")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"hps_bench_{uuid.uuid4().hex[:12]}"
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        _upgrade(url)
        yield url
    finally:
        store.get_engine(url).dispose()
        store.get_engine(url, read_only=True).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _upgrade(url: str) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        upgrade_db(url)


__all__ = ["BACKENDS", "PG_ADMIN", "database"]
