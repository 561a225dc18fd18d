"""The remote bench's load part: report latency while built-in workers train.

``hpsearch serve --workers W`` on a fresh database trains ``bench/load.py``'s digits study
(identical-cost trials, 2 at once); a ``model: external`` study with parallelism
``--reporters`` is reported to by ``--reporters`` clients at ``--hz`` each
(``_reporters.Reporters``). After a warm-up (connections made, trials claimed), quiet
phases (the clients paused, their trials held) alternate with loaded ones, ``--duration``
seconds each, ending quiet, as in ``bench/load.py``; the workers' throughput drop is each
loaded phase's against the mean of the quiet ones on either side. Calls are counted in the
loaded phase in which they were sent.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from _remote_clients import external_spec
from _reporters import Reporters, Tally
from _serve import QUIET, free_port
from load import STUDY, Phase, cpu_seconds, server_cpu, server_used, worker_pids
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from search import store
from service.keys import create_key

ROOT = Path(__file__).resolve().parent.parent
WARM_UP_S = 3.0  # of reporting before the first phase: connections made, trials claimed


@dataclass(frozen=True)
class Serving:
    proc: subprocess.Popen[bytes]
    port: int
    key: str | None


@contextlib.contextmanager
def serving(url: str, auth: str, workers: int) -> Iterator[Serving]:
    """``hpsearch serve --workers N`` on ``url`` (with an API key when ``auth`` is on),
    healthy; stopped afterwards (it stops its workers itself)."""
    key = create_key(url, f"bench-{uuid.uuid4().hex[:8]}") if auth == "on" else None
    port = free_port()
    env = os.environ | QUIET | {"HPS_DATABASE_URL": url, "HPS_AUTH": auth}
    cmd = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
    cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while not _healthy(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"hpsearch serve did not start (exit {proc.returncode})")
            time.sleep(0.2)
        yield Serving(proc, port, key)
    finally:
        proc.terminate()  # it stops its workers itself, after the requests still out
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # requests stuck: the workers go with it
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _healthy(port: int) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    return False


@dataclass(frozen=True)
class LoadResult:
    backend: str
    achieved: float  # reports answered per second (of those sent in loaded phases)
    reports: int
    p50: float  # ms, reports
    p99: float
    other_p99: float  # ms, claims and completes
    errors: int  # after the warm-up
    error_kinds: list[str]
    quiet: float  # the workers' trials/s
    loaded: float
    drop: float  # %, median over rounds
    drops: tuple[float, float]
    api_cpu: float  # % of one core, loaded
    client_cpu: float
    workers_quiet: float
    workers_loaded: float
    db_quiet: float
    db_loaded: float


class Trained:
    """The workers' finished trials, counted in the database (the API may be saturated)."""

    def __init__(self, url: str, study_id: int) -> None:
        self.sessions: sessionmaker[Session] = store.make_session_factory(url, read_only=True)
        self.query = (
            select(func.count())
            .select_from(store.TrialRow)
            .where(
                store.TrialRow.study_id == study_id,
                store.TrialRow.state.in_([store.T_COMPLETE, store.T_PRUNED, store.T_FAIL]),
            )
        )

    def count(self) -> int:
        with store.session_scope(self.sessions) as session:
            return int(session.scalar(self.query) or 0)


def measure(
    trained: Trained, seconds: float, pid: int, workers: list[int], database: str | None
) -> Phase:
    """The workers' throughput over the next ``seconds``, and the CPU each party used
    (``bench/load.py``'s phase)."""
    t0, done0 = time.monotonic(), trained.count()
    api0, clients0 = cpu_seconds(pid), time.process_time()
    workers0, db0 = sum(map(cpu_seconds, workers)), server_cpu(database)
    time.sleep(seconds)
    span = time.monotonic() - t0
    return Phase(
        (trained.count() - done0) / span,
        span,
        api_cpu=(cpu_seconds(pid) - api0) / span,
        client_cpu=(time.process_time() - clients0) / span,
        workers_cpu=(sum(map(cpu_seconds, workers)) - workers0) / span,
        db_cpu=server_used(database, db0) / span,
    )


def phases(
    trained: Trained,
    reporters: Reporters,
    parties: tuple[int, list[int], str | None],
    args: argparse.Namespace,
) -> tuple[list[Phase], list[Phase], list[tuple[float, float]], int]:
    """The quiet phases, the loaded ones, the loaded phases' (start, end) and how many
    errors the warm-up made."""
    stop = threading.Event()
    thread = threading.Thread(target=reporters.run, args=(stop,))
    thread.start()
    quiet: list[Phase] = []
    loaded: list[Phase] = []
    windows: list[tuple[float, float]] = []
    try:
        time.sleep(WARM_UP_S)
        reporters.pause()
        time.sleep(1.0)  # what was out is answered
        warm_up_errors = len(reporters.tally.errors)
        for _ in range(args.load_rounds):
            quiet.append(measure(trained, args.duration, *parties))
            reporters.resume()
            t0 = time.monotonic()
            loaded.append(measure(trained, args.duration, *parties))
            windows.append((t0, time.monotonic()))
            reporters.pause()
        quiet.append(measure(trained, args.duration, *parties))
    finally:
        stop.set()
        thread.join()
    return quiet, loaded, windows, warm_up_errors


def run_load(backend: str, url: str, args: argparse.Namespace) -> LoadResult:
    with serving(url, args.auth, args.workers) as s:
        headers = {"Authorization": f"Bearer {s.key}"} if s.key else {}
        base = f"http://127.0.0.1:{s.port}"
        with httpx.Client(base_url=base, headers=headers, timeout=30) as api:
            trained = api.post("/api/v1/studies", json=STUDY).json()["id"]
            spec = external_spec("remote-load", args.load_pruner, 10000, args.reporters)
            reported = api.post("/api/v1/studies", json=spec).json()["id"]
        counter = Trained(url, trained)
        while counter.count() < 2 * args.workers:  # the workers warmed up
            time.sleep(0.5)
        database = make_url(url).database if backend == "postgresql" else None
        parties = (s.proc.pid, worker_pids(s.proc.pid), database)
        address = ("127.0.0.1", s.port)
        reporters = Reporters(address, s.key, reported, args.reporters, args.hz, args.load_epochs)
        measured = phases(counter, reporters, parties, args)
    return summary(backend, reporters.tally, measured)


def summary(
    backend: str,
    tally: Tally,
    measured: tuple[list[Phase], list[Phase], list[tuple[float, float]], int],
) -> LoadResult:
    quiet, loaded, windows, warm_up = measured
    calls = [c for c in tally.calls if any(t0 <= c.sent < t1 for t0, t1 in windows)]
    reports = sorted(c.ms for c in calls if c.kind == "report" and c.ok)
    others = sorted(c.ms for c in calls if c.kind != "report" and c.ok) or [0.0]
    drops = [
        100 * (1 - p.rate / statistics.mean([before.rate, after.rate]))
        for p, before, after in zip(loaded, quiet[:-1], quiet[1:], strict=True)
    ]
    errors = tally.errors[warm_up:]
    return LoadResult(
        backend=backend,
        achieved=len(reports) / sum(t1 - t0 for t0, t1 in windows),
        reports=len(reports),
        p50=_quantile(reports, 0.5),
        p99=_quantile(reports, 0.99),
        other_p99=_quantile(others, 0.99),
        errors=len(errors),
        error_kinds=sorted(set(errors))[:5],
        quiet=statistics.mean(q.rate for q in quiet),
        loaded=statistics.mean(p.rate for p in loaded),
        drop=statistics.median(drops),
        drops=(min(drops), max(drops)),
        api_cpu=100 * statistics.mean(p.api_cpu for p in loaded),
        client_cpu=100 * statistics.mean(p.client_cpu for p in loaded),
        workers_quiet=100 * statistics.mean(q.workers_cpu for q in quiet),
        workers_loaded=100 * statistics.mean(p.workers_cpu for p in loaded),
        db_quiet=100 * statistics.mean(q.db_cpu for q in quiet),
        db_loaded=100 * statistics.mean(p.db_cpu for p in loaded),
    )


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def print_load_header(args: argparse.Namespace) -> None:
    offered = args.reporters * args.hz
    print(
        f"# load: {args.reporters} clients x {args.hz:g} Hz = {offered:g} reports/s offered, "
        f"{args.load_epochs} reports/trial, pruner {args.load_pruner}, {args.workers} workers "
        f"training digits, {args.load_rounds} x {args.duration:g} s loaded phases"
    )
    print(
        f"{'database':<11} {'reports':>7} {'rep/s':>6} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'claim+complete p99':>18} {'errors':>6} {'trials/s quiet':>14} {'loaded':>6} "
        f"{'drop (range)':<21} {'CPU % API':>9} {'clients':>7} {'workers q/l':>11} "
        f"{'db q/l':>9}",
        flush=True,
    )


def print_load_row(r: LoadResult) -> None:
    drop = f"{r.drop:.0f}% ({r.drops[0]:.0f} to {r.drops[1]:.0f})"
    db = "-" if r.backend == "sqlite" else f"{r.db_quiet:.0f}/{r.db_loaded:.0f}"
    print(
        f"{r.backend:<11} {r.reports:>7} {r.achieved:>6.0f} {r.p50:>7.1f} {r.p99:>7.1f} "
        f"{r.other_p99:>18.1f} {r.errors:>6} {r.quiet:>14.3f} {r.loaded:>6.3f} "
        f"{drop:<21} {r.api_cpu:>9.0f} {r.client_cpu:>7.0f} "
        f"{f'{r.workers_quiet:.0f}/{r.workers_loaded:.0f}':>11} {db:>9}",
        flush=True,
    )
    if r.errors:
        print("  errors:", ", ".join(r.error_kinds), flush=True)
