"""Load: N concurrent HTTP clients polling a real `hpsearch serve` while its workers train.

Each backend (SQLite file, PostgreSQL throwaway database) gets a fresh database, an API
key, `hpsearch serve --workers W` with HPS_AUTH=on and one long study of identical-cost
digits trials, and ``--clients`` watchers, each on its own key-carrying keep-alive
connection, polling the study's status, its leaderboard (top 10), its page (HTML) and the
changes since its last cursor in turn, one request every ``--interval`` seconds (a watching
browser polls every 1.5 s), at independent moments (one thread drives them all:
:mod:`_pollers`). After a few seconds of polling (connections made, answers kept), the
watchers pause and resume: ``--rounds`` times a quiet phase and a loaded phase of
``--duration`` seconds each, and a last quiet phase.
Printed per backend: requests/s, p50/p99 latency, errors (any answer but 200 or 304, or a
transport error), the share of 304s,
the workers' training throughput (trials completed per second) without and with the load,
the drop, the CPU the workers used without and with the load, the CPU the API process
and the clients used while loaded, and the CPU of the PostgreSQL server's processes
without and with the load (% of one core; SQLite has no server): on a box whose cores the
workers keep busy, what those use is what the workers lose.

The drop is the median over rounds of each loaded phase's throughput against the mean of
the quiet phases on either side of it (its range is printed too): on a shared machine the
speed of the same trial wanders by 10-30% within a minute, so short phases, side by side
and many of them, compare like with like. The watchers keep their connections over the
pauses, so a loaded phase is the steady state from its first second. Each watcher sends
back the ETag it last got for a URL (as the live page and the CLI's ``watch`` do): the
share of 304s is printed.

    .venv/bin/python bench/load.py [--clients 50] [--duration 5] [--rounds 16]
        [--interval 1.0] [--epochs 20] [--backends sqlite,postgresql]
        [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]

Clients, API and workers share the machine, as they would on a one-box install.
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
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _databases import PG_ADMIN, database  # noqa: E402
from _pollers import Pollers  # noqa: E402
from _serve import free_port  # noqa: E402

from service.keys import create_key  # noqa: E402

WARM_UP_S = 3.0  # of polling before the first phase: connections made, answers kept
STUDY = {
    "name": "load-bench",
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": 10000,
        "parallelism": 2,
        "space": {"keep_prob": {"type": "float", "low": 0.8, "high": 1.0}},
    },
    "training": {"epochs": 20, "batch_size": 64, "hidden": [64], "lr": 1e-3},
}


def completed(client: httpx.Client, study_id: int) -> int:
    """Trials finished so far (answers are exact: labelled with the study's version)."""
    counts = client.get(f"/api/v1/studies/{study_id}").json()["counts"]
    return int(counts["complete"] + counts["pruned"] + counts["fail"])


def throughput(client: httpx.Client, study_id: int, seconds: float) -> float:
    """Trials finished per second over the next ``seconds``."""
    before, t0 = completed(client, study_id), time.monotonic()
    time.sleep(seconds)
    return (completed(client, study_id) - before) / (time.monotonic() - t0)


def worker_pids(serve_pid: int) -> list[int]:
    """The local workers: the serve process's children (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError):
            if entry.name.isdigit():
                parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                if int(parent) == serve_pid:
                    pids.append(int(entry.name))
    return pids


def _serves(cmdline: bytes, database: str) -> bool:
    """Whether a PostgreSQL server process works for ``database``: its own backends
    ("postgres: 15/main: USER DATABASE 127.0.0.1(PORT) idle", autovacuum on it) and the
    server's shared processes (writers, checkpointer); not other databases' backends."""
    words = cmdline.decode(errors="replace").split()
    client = any("(" in w or w == "[local]" for w in words) or "autovacuum worker" in " ".join(
        words
    )
    return database in words or not client


def server_cpu(database: str | None) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL server process that works for ``database``
    (the API's and the workers' backends, the server's own); empty for None (SQLite)."""
    cpu: dict[int, float] = {}
    if database is None:
        return cpu
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            if not entry.name.isdigit() or (entry / "comm").read_text().strip() != "postgres":
                continue
            if _serves((entry / "cmdline").read_bytes().replace(b"\0", b" "), database):
                cpu[int(entry.name)] = cpu_seconds(int(entry.name))
    return cpu


def server_used(database: str | None, before: dict[int, float]) -> float:
    """CPU seconds those processes used since ``before`` (a process started since counts
    whole; one that ended since is lost: the pools keep theirs)."""
    after = server_cpu(database)
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Phase:
    rate: float  # trials finished per second
    span: float  # seconds
    api_cpu: float  # share of one core
    client_cpu: float  # the watchers' (this process's)
    workers_cpu: float
    db_cpu: float


def measure(
    api: httpx.Client,
    study_id: int,
    seconds: float,
    pid: int,
    workers: list[int],
    database: str | None,
) -> Phase:
    """The workers' throughput over the next ``seconds``, and the CPU each party used."""
    t0 = time.monotonic()
    api0, clients0 = cpu_seconds(pid), time.process_time()
    workers0, db0 = sum(map(cpu_seconds, workers)), server_cpu(database)
    rate = throughput(api, study_id, seconds)
    span = time.monotonic() - t0
    return Phase(
        rate,
        span,
        api_cpu=(cpu_seconds(pid) - api0) / span,
        client_cpu=(time.process_time() - clients0) / span,
        workers_cpu=(sum(map(cpu_seconds, workers)) - workers0) / span,
        db_cpu=server_used(database, db0) / span,
    )


def phases(
    api: httpx.Client,
    study_id: int,
    pollers: Pollers,
    parties: tuple[int, list[int], str | None],
    args: argparse.Namespace,
) -> tuple[list[Phase], list[Phase], tuple[int, int]]:
    """The quiet phases (``--rounds`` + 1), the loaded ones between them, and how many
    requests and errors the warm-up made."""
    stop = threading.Event()
    thread = threading.Thread(target=pollers.run, args=(stop,))
    thread.start()
    try:
        time.sleep(WARM_UP_S)  # connections made, answers kept
        pollers.pause()
        time.sleep(args.interval)  # what was out is answered
        warm_up = len(pollers.tally.latencies), len(pollers.tally.errors)
        quiet: list[Phase] = []
        loaded: list[Phase] = []
        for _ in range(args.rounds):
            quiet.append(measure(api, study_id, args.duration, *parties))
            pollers.resume()
            loaded.append(measure(api, study_id, args.duration, *parties))
            pollers.pause()
        quiet.append(measure(api, study_id, args.duration, *parties))
    finally:
        stop.set()
        thread.join()
    return quiet, loaded, warm_up


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, object]:
    with database(backend, args.pg_url) as url:
        key = create_key(url, "bench")
        server_db = make_url(url).database if backend == "postgresql" else None
        port = free_port()
        env = os.environ | {
            "HPS_DATABASE_URL": url,
            "HPS_AUTH": "on",
            "HPS_LOG_LEVEL": "WARNING",
        }
        cmd = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
        cmd += ["--workers", str(args.workers)]
        # Its stdout only says "database ready"; errors go to stderr.
        proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL
        )
        try:
            api = httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if api.get("/health").status_code == 200:
                        break
                assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
                time.sleep(0.3)
            spec = STUDY | {"training": STUDY["training"] | {"epochs": args.epochs}}
            study_id = api.post("/api/v1/studies", json=spec).json()["id"]
            while completed(api, study_id) < 2 * args.workers:  # warmed up
                time.sleep(0.5)
            parties = (proc.pid, worker_pids(proc.pid), server_db)
            pollers = Pollers("127.0.0.1", port, key, study_id, args.clients, args.interval)
            quiet, loaded, warm_up = phases(api, study_id, pollers, parties, args)
        finally:
            proc.send_signal(signal.SIGTERM)  # serve stops its workers itself
            proc.wait(timeout=60)
    latencies = sorted(pollers.tally.latencies[warm_up[0] :])
    errors = pollers.tally.errors[warm_up[1] :]
    drops = [
        100 * (1 - p.rate / statistics.mean([before.rate, after.rate]))
        for p, before, after in zip(loaded, quiet[:-1], quiet[1:], strict=True)
    ]
    return {
        "backend": backend,
        "requests": len(latencies),
        "req_s": len(latencies) / sum(p.span for p in loaded),
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "errors": len(errors),
        "not_modified": 100 * pollers.tally.not_modified / max(1, len(pollers.tally.latencies)),
        "error_kinds": sorted(set(errors))[:5],
        "quiet": statistics.mean(q.rate for q in quiet),
        "loaded": statistics.mean(p.rate for p in loaded),
        "drop": statistics.median(drops),
        "drops": (min(drops), max(drops)),
        "workers_quiet": 100 * statistics.mean(q.workers_cpu for q in quiet),
        "workers_loaded": 100 * statistics.mean(p.workers_cpu for p in loaded),
        "api_cpu": 100 * statistics.mean(p.api_cpu for p in loaded),
        "client_cpu": 100 * statistics.mean(p.client_cpu for p in loaded),
        "db_quiet": 100 * statistics.mean(q.db_cpu for q in quiet),
        "db_loaded": 100 * statistics.mean(p.db_cpu for p in loaded),
    }


def db_column(r: dict[str, object]) -> str:
    if r["backend"] != "postgresql":  # SQLite runs in the API's and the workers' processes
        return f"{'-':>18}  {'-':>6}"
    return f"{r['db_quiet']:>17.0f}%  {r['db_loaded']:>5.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between a client's requests"
    )
    parser.add_argument("--rounds", type=int, default=16, help="quiet/loaded pairs (ends quiet)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--epochs", type=int, default=20, help="per trial: more epochs, a slower-changing study"
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--pg-url",
        default=PG_ADMIN,
    )
    args = parser.parse_args()
    print(
        f"{args.clients} clients, one request each per {args.interval:g} s, {args.duration:g} s "
        f"phases, {args.workers} workers, {args.epochs}-epoch trials, {os.cpu_count()} cores"
    )
    header = (
        "backend     requests  req/s  p50 ms  p99 ms  errors  304s  trials/s quiet  loaded"
        "  drop (range)          workers CPU quiet  loaded  API CPU  clients CPU"
        "  database CPU quiet  loaded"
    )
    print(header)
    for backend in args.backends.split(","):
        r = run_backend(backend.strip(), args)
        low, high = r["drops"]  # type: ignore[misc]
        drop = f"{r['drop']:.1f}% ({low:.1f} to {high:.1f})"
        print(
            f"{r['backend']:<11} {r['requests']:>8}  {r['req_s']:>5.1f}  {r['p50']:>6.1f}  "
            f"{r['p99']:>6.1f}  {r['errors']:>6}  {r['not_modified']:>3.0f}%  "
            f"{r['quiet']:>14.3f}  {r['loaded']:>6.3f}  "
            f"{drop:<20}  {r['workers_quiet']:>17.0f}%  {r['workers_loaded']:>5.0f}%  "
            f"{r['api_cpu']:>6.0f}%  {r['client_cpu']:>10.0f}%  "
            f"{db_column(r)}",
            flush=True,
        )
        if r["errors"]:
            print("  errors:", r["error_kinds"])


if __name__ == "__main__":
    main()
