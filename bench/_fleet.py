"""Many workers on one small PostgreSQL, for ``bench/scaling.py --fleet``: a private server
(``initdb`` into a temporary directory, its own port, ``max_connections = 100``) with a
transaction-pooling PgBouncer in front, and what the run costs the machine: each worker's
memory and the CPU time of the database, PgBouncer, the API and the workers.

The server and PgBouncer are started the way the tests start them (``tests/pg_server.py``,
``tests/pgbouncer.py``), so the benchmark and the tests share one way to run each daemon.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from search import store
from service.runner import upgrade_db
from tests.pg_server import pg_server
from tests.pgbouncer import pgbouncer

MAX_CONNECTIONS = 100  # the server's limit: far below two per worker
# PgBouncer's server connections for the benchmark's database: enough to keep 2 cores busy,
# a fifth of the server's slots; the workers' 256 client connections take turns on them.
SERVER_POOL = 20
WORKER_MB = 120  # what to reserve per worker before starting them (RSS about 113 MB)
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class FleetDatabase:
    url: str  # through PgBouncer: what the API and the workers use
    direct: str  # the server itself, for the benchmark's own checks
    postmaster: int  # pid
    bouncer: int  # pid


@contextlib.contextmanager
def fleet_database() -> Iterator[FleetDatabase]:
    """A migrated database on a private server with ``max_connections = 100`` behind
    PgBouncer; both stopped and deleted afterwards."""
    options = f"-c max_connections={MAX_CONNECTIONS} -c fsync=on"
    with pg_server(options) as server, pgbouncer(server.url, SERVER_POOL) as bouncer:
        url = bouncer.url_for(server.url)
        with contextlib.redirect_stdout(io.StringIO()):
            upgrade_db(url)
        for each in (url, server.url):
            store.get_engine(each).dispose()
        pid = server.pid()
        assert pid is not None
        yield FleetDatabase(url, server.url, pid, bouncer.proc.pid)


def check_memory(workers: int) -> None:
    """Refuse to start more workers than the free memory holds (this machine is shared)."""
    available = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) // 1024
    needed = workers * WORKER_MB + 2048
    if available < needed:
        raise SystemExit(
            f"{workers} workers need about {needed} MB free, the machine has {available} MB"
        )


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a server's backends)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far (processes gone meanwhile count 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def memory_mb(pid: int) -> tuple[float, float]:
    """A process's resident memory and its proportional share of it (RSS, PSS), in MB."""
    values = {"Rss:": 0.0, "Pss:": 0.0}
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            parts = line.split()
            if parts and parts[0] in values:
                values[parts[0]] = int(parts[1]) / 1024
    return values["Rss:"], values["Pss:"]


@dataclass
class CpuWatch:
    """CPU seconds each group of processes (a function giving its pids: a server's backends
    come and go) spends between ``start()`` and ``stop()``; a process that exits meanwhile
    takes its time with it."""

    groups: dict[str, Callable[[], list[int]]]
    spent: dict[str, float] = field(default_factory=dict)
    _at_start: dict[int, float] = field(default_factory=dict)

    def start(self) -> None:
        self._at_start = {p: cpu_seconds([p]) for pids in self.groups.values() for p in pids()}

    def stop(self) -> None:
        self.spent = {
            name: sum(cpu_seconds([p]) - self._at_start.get(p, 0.0) for p in pids())
            for name, pids in self.groups.items()
        }


def median_memory(pids: list[int]) -> tuple[float, float]:
    pairs = [memory_mb(pid) for pid in pids]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def study_outcome(direct_url: str, study_id: int) -> tuple[int, int, bool]:
    """(trials, trials that failed, every slot claimed exactly once) of the study."""
    engine = create_engine(direct_url, poolclass=NullPool)
    t = store.TrialRow
    with engine.connect() as conn:
        slots = list(conn.scalars(select(t.slot).where(t.study_id == study_id)))
        failed = conn.scalar(
            select(func.count()).where(t.study_id == study_id, t.state == store.T_FAIL)
        )
        n_trials = conn.scalar(select(store.StudyRow.n_trials).where(store.StudyRow.id == study_id))
    engine.dispose()
    return len(slots), int(failed or 0), sorted(slots) == list(range(int(n_trials or 0)))


__all__ = [
    "MAX_CONNECTIONS",
    "SERVER_POOL",
    "CpuWatch",
    "FleetDatabase",
    "check_memory",
    "children",
    "fleet_database",
    "median_memory",
    "study_outcome",
]
