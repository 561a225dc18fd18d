"""A PostgreSQL server of a test's own: ``initdb`` and ``pg_ctl`` from the installed server
binaries, on a port and in a data directory of its own, so a test can stop it (``-m
immediate``, as a crash or a failover does) and start it again without touching the
machine's server. PostgreSQL refuses to run as root: the server runs as the ``postgres``
user, with trust auth on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.processes import free_port

RUN_AS = "postgres"


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"no {name} under /usr/lib/postgresql/*/bin: install postgresql")
    return found[-1]


class PgServer:
    """One server: ``url`` names its database ``hps``; ``stop()``/``start()`` take it away
    and bring it back; ``close()`` stops it for good and removes its files."""

    def __init__(self, root: Path, port: int, options: str = "") -> None:
        self.root = root
        self.data = root / "data"
        self.port = port
        self.options = options  # more server settings (-c name=value ...), last word
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/hps"

    def _run(self, *args: str) -> None:
        cmd = ["runuser", "-u", RUN_AS, "--", *args] if os.geteuid() == 0 else list(args)
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stdout}{done.stderr}")

    def init(self) -> None:
        self._run(
            _bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        self.start()
        admin = create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres",
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE hps"))
        admin.dispose()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        options = f"{options} {self.options}".strip()
        self._run(
            _bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def pid(self) -> int | None:
        pidfile = self.data / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            return int(pidfile.read_text().splitlines()[0])
        return None

    def close(self) -> None:
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")
            _wait_gone(pid)
        shutil.rmtree(self.root, ignore_errors=True)


def _wait_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


@contextlib.contextmanager
def pg_server(options: str = "") -> Iterator[PgServer]:
    """A fresh server, stopped and deleted afterwards (also when the test fails);
    ``options``: more settings, e.g. ``-c max_connections=100`` (``bench/scaling.py``)."""
    # Not under pytest's tmp_path: its parents are root's, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="hps-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam(RUN_AS)
        os.chown(root, user.pw_uid, user.pw_gid)
    root.chmod(0o700)
    server = PgServer(root, free_port(), options)
    try:
        server.init()
        yield server
    finally:
        server.close()
