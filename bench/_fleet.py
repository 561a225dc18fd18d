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
from typing import Any

from sqlalchemy import create_engine, select
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


@dataclass
class Outcome:
    trials: int
    failed: int
    every_slot_once: bool
    start_lag: float  # the study's creation to its first claim, s
    last_start: float  # the study's creation to the last worker's first claim, s
    trial: float  # median claim to end of a trial, s
    gap: float  # median end of a worker's trial to its next claim, s
    tail: float  # the last trial's end to the study's end, s

    def line(self, trial_s: float) -> str:
        return (
            f"# where the time goes: the workers' first claims {self.start_lag:.2f}-"
            f"{self.last_start:.2f} s after submission; a {trial_s:g}-s trial takes "
            f"{self.trial:.3f} s from claim to end "
            f"(median), then {self.gap:.3f} s to the worker's next claim; the study ends "
            f"{self.tail:.2f} s after its last trial"
        )


def study_outcome(direct_url: str, study_id: int) -> Outcome:
    """What became of the study's trials, and where its time went (the database's times)."""
    engine = create_engine(direct_url, poolclass=NullPool)
    t, st = store.TrialRow, store.StudyRow
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.slot, t.state, t.worker_id, t.started_at, t.finished_at).where(
                t.study_id == study_id
            )
        ).all()
        study = conn.execute(
            select(st.n_trials, st.created_at, st.finished_at).where(st.id == study_id)
        ).one()
    engine.dispose()
    by_worker: dict[int | None, list[Any]] = {}
    for row in sorted(rows, key=lambda r: r.started_at):
        by_worker.setdefault(row.worker_id, []).append(row)
    gaps = [
        (b.started_at - a.finished_at).total_seconds()
        for runs in by_worker.values()
        for a, b in zip(runs, runs[1:], strict=False)
        if a.finished_at is not None
    ]
    ends = [r.finished_at for r in rows if r.finished_at is not None]
    return Outcome(
        trials=len(rows),
        failed=sum(r.state == store.T_FAIL for r in rows),
        every_slot_once=sorted(r.slot for r in rows) == list(range(study.n_trials)),
        start_lag=(min(r.started_at for r in rows) - study.created_at).total_seconds(),
        last_start=max(
            (runs[0].started_at - study.created_at).total_seconds() for runs in by_worker.values()
        ),
        trial=statistics.median((r.finished_at - r.started_at).total_seconds() for r in rows),
        gap=statistics.median(gaps) if gaps else 0.0,
        tail=(study.finished_at - max(ends)).total_seconds() if ends else 0.0,
    )


__all__ = [
    "MAX_CONNECTIONS",
    "SERVER_POOL",
    "CpuWatch",
    "FleetDatabase",
    "Outcome",
    "check_memory",
    "children",
    "fleet_database",
    "median_memory",
    "study_outcome",
]
