"""A real PgBouncer for the tests: Debian's ``/usr/sbin/pgbouncer`` started by a fixture with
a generated ``pgbouncer.ini`` (its own port, transaction pooling, trust auth, every
database forwarded to a PostgreSQL server), never by systemd, and stopped by pid.

PgBouncer refuses to run as root: as root it is started with ``-u postgres`` (the files
it reads and writes are that user's). Its server connections are few on purpose
(``default_pool_size``), so the clients' transactions really do take turns on them, and
a session-level habit (a prepared statement, a SET, an advisory lock kept past a
transaction) breaks as it would in production. ``pgbouncer_with`` starts it on a given
ini instead (a deployment's, to show that PgBouncer accepts every setting). ``make test``
installs the package (``make pgbouncer``); a missing one fails the tests, never skips them.
"""

from __future__ import annotations

import configparser
import contextlib
import io
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

PGBOUNCER = "/usr/sbin/pgbouncer"
RUN_AS = "postgres"
SERVER_CONNECTIONS = 4  # per database: fewer than the clients that share them


@dataclass
class PgBouncer:
    root: Path
    port: int
    proc: subprocess.Popen[bytes]

    def url_for(self, postgres_url: str) -> str:
        """``postgres_url``'s database through this PgBouncer, with psycopg's server-side
        prepared statements off (PgBouncer 1.18 cannot carry them across transactions)."""
        url = make_url(postgres_url).set(
            host="127.0.0.1", port=self.port, query={"prepare_threshold": "none"}
        )
        return url.render_as_string(hide_password=False)

    def log(self) -> str:
        path = self.root / "pgbouncer.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def _ini(root: Path, port: int, server_host: str, server_port: int, pool_size: int) -> str:
    return f"""\
[databases]
* = host={server_host} port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {root}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
logfile = {root}/pgbouncer.log
pidfile = {root}/pgbouncer.pid
admin_users = postgres
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def pgbouncer(postgres_url: str, pool_size: int = SERVER_CONNECTIONS) -> Iterator[PgBouncer]:
    """PgBouncer in front of ``postgres_url``'s server (any database on it), with
    ``pool_size`` server connections per database, stopped by pid at the end."""
    server = make_url(postgres_url)
    host, server_port = server.host or "127.0.0.1", server.port or 5432

    def files(root: Path, port: int) -> tuple[str, str]:
        ini = _ini(root, port, host, server_port, pool_size)
        return ini, f'"{server.username or RUN_AS}" ""\n'

    with _running(files) as bouncer:
        yield bouncer


@contextlib.contextmanager
def pgbouncer_with(ini: str, userlist: str) -> Iterator[PgBouncer]:
    """PgBouncer on the settings of a given ``pgbouncer.ini`` (a deployment's: it fails to
    start on an unknown setting or a bad value) and ``userlist``, but listening on
    127.0.0.1 at a free port, with its auth_file in its own directory."""

    def files(root: Path, port: int) -> tuple[str, str]:
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(ini)
        parser["pgbouncer"].update(
            listen_addr="127.0.0.1", listen_port=str(port), auth_file=f"{root}/userlist.txt"
        )
        text = io.StringIO()
        parser.write(text)
        return text.getvalue(), userlist

    with _running(files) as bouncer:
        yield bouncer


@contextlib.contextmanager
def _running(files: Callable[[Path, int], tuple[str, str]]) -> Iterator[PgBouncer]:
    """PgBouncer on ``files(root, port)``'s ini and userlist.txt, written to a directory of
    its own; started, waited for until it listens, and stopped by pid at the end."""
    if not Path(PGBOUNCER).exists():
        raise RuntimeError(f"PgBouncer is not installed ({PGBOUNCER}): run `make pgbouncer`")
    root = Path(tempfile.mkdtemp(prefix="hps-pgbouncer-"))
    port = _free_port()
    ini_text, userlist = files(root, port)
    (root / "userlist.txt").write_text(userlist)
    ini = root / "pgbouncer.ini"
    ini.write_text(ini_text)
    cmd = [PGBOUNCER, str(ini)]
    if os.geteuid() == 0:
        user = pwd.getpwnam(RUN_AS)
        for path in (root, *root.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)
        cmd[1:1] = ["-u", RUN_AS]
    out = (root / "stderr.log").open("ab")
    proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True)
    bouncer = PgBouncer(root=root, port=port, proc=proc)
    try:
        deadline = time.monotonic() + 30
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = (root / "stderr.log").read_text(errors="replace")
                raise RuntimeError(
                    f"pgbouncer did not start ({proc.poll()}):\n{err}{bouncer.log()}"
                )
            time.sleep(0.05)
        yield bouncer
    finally:
        _stop(proc)
        out.close()
        shutil.rmtree(root, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM: PgBouncer's immediate shutdown (clients are dropped)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


__all__ = ["PGBOUNCER", "SERVER_CONNECTIONS", "PgBouncer", "pgbouncer", "pgbouncer_with"]
