"""Load: N concurrent HTTP clients polling a real `hpsearch serve` while its workers train.

Each backend (SQLite file, PostgreSQL throwaway database) gets a fresh database, an API
key, `hpsearch serve --workers W` with HPS_AUTH=on and one long study of identical-cost
digits trials. Then, alternating, phases of ``--duration`` seconds without and with load:
``--clients`` threads, each with its own key-carrying connection, polling the study's
status, its leaderboard (top 10), its page (HTML) and the changes since its last cursor in
turn, one request every ``--interval`` seconds (a watching browser polls every 1.5 s).
Printed per backend: requests/s, p50/p99 latency, errors (any non-200 or transport error),
the workers' training throughput (trials completed per second) without and with the load,
and the CPU the API process and the clients used while loaded (% of one core): on a box
whose cores the workers keep busy, that CPU is what the workers lose.

    .venv/bin/python bench/load.py [--clients 50] [--duration 30] [--interval 1.0]
        [--backends sqlite,postgresql] [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]

Clients, API and workers share the machine, as they would on a one-box install.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _databases import PG_ADMIN, database  # noqa: E402
from _serve import free_port  # noqa: E402

from service.keys import create_key  # noqa: E402

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


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def completed(client: httpx.Client, study_id: int) -> int:
    counts = client.get(f"/api/v1/studies/{study_id}").json()["counts"]
    return int(counts["complete"] + counts["pruned"] + counts["fail"])


def throughput(client: httpx.Client, study_id: int, seconds: float) -> float:
    """Trials finished per second over the next ``seconds``."""
    before, t0 = completed(client, study_id), time.monotonic()
    time.sleep(seconds)
    return (completed(client, study_id) - before) / (time.monotonic() - t0)


def poller(
    base: str, key: str, study_id: int, interval: float, stop: threading.Event, tally: Tally
) -> None:
    """One watcher: a keep-alive connection asking for the study's status, leaderboard, page
    and the changes since its last answer's cursor, in turn, one request per ``interval``.

    It uses ``http.client`` rather than httpx: the clients share the 2 cores with the server
    and the workers, and a lighter client leaves less of its own cost in the workers' figure
    (the clients' CPU is printed beside it). Bodies are read but, like a browser's gzip,
    not decoded."""
    host, port = base.removeprefix("http://").split(":")
    api = f"/api/v1/studies/{study_id}"
    headers = {
        "Authorization": f"Bearer {key}",
        "Accept": "text/html",
        "Accept-Encoding": "gzip",
    }
    cursor = 0
    i = int.from_bytes(os.urandom(1), "big")  # clients start at different urls
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        while not stop.is_set():
            urls = [api, f"{api}/leaderboard?top=10", f"/studies/{study_id}"]
            changes = i % 4 == 3
            url = f"{api}/changes?cursor={cursor}" if changes else urls[i % 4]
            i += 1
            t0 = time.perf_counter()
            try:
                conn.request("GET", url, headers=headers)
                r = conn.getresponse()
                body = r.read()
                bad = None if r.status == 200 else f"{url}: HTTP {r.status}"
                if changes and r.status == 200:
                    gzipped = r.getheader("Content-Encoding") == "gzip"
                    cursor = json.loads(gzip.decompress(body) if gzipped else body)["cursor"]
            except (OSError, http.client.HTTPException) as exc:
                bad = f"{url}: {type(exc).__name__}"
                conn.close()
            ms = (time.perf_counter() - t0) * 1000
            with tally.lock:
                tally.latencies.append(ms)
                if bad:
                    tally.errors.append(bad)
            stop.wait(max(0.0, interval - ms / 1000))
    finally:
        conn.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Phase:
    rate: float
    tally: Tally
    span: float
    api_cpu: float  # share of one core
    client_cpu: float


def loaded_phase(
    base: str, key: str, study_id: int, args: argparse.Namespace, api: httpx.Client, pid: int
) -> Phase:
    tally, stop = Tally(), threading.Event()
    api0, clients0 = cpu_seconds(pid), time.process_time()
    threads = [
        threading.Thread(target=poller, args=(base, key, study_id, args.interval, stop, tally))
        for _ in range(args.clients)
    ]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    rate = throughput(api, study_id, args.duration)
    stop.set()
    for t in threads:
        t.join()
    span = time.monotonic() - t0
    api_cpu = (cpu_seconds(pid) - api0) / span
    return Phase(rate, tally, span, api_cpu, (time.process_time() - clients0) / span)


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, object]:
    with database(backend, args.pg_url) as url:
        key = create_key(url, "bench")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
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
                base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30
            )
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if api.get("/health").status_code == 200:
                        break
                assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
                time.sleep(0.3)
            study_id = api.post("/api/v1/studies", json=STUDY).json()["id"]
            while completed(api, study_id) < 2 * args.workers:  # warmed up
                time.sleep(0.5)
            quiet, phases = [], []
            for _ in range(args.rounds):
                quiet.append(throughput(api, study_id, args.duration))
                phases.append(loaded_phase(base, key, study_id, args, api, proc.pid))
            quiet.append(throughput(api, study_id, args.duration))
        finally:
            proc.send_signal(signal.SIGTERM)  # serve stops its workers itself
            proc.wait(timeout=60)
    latencies = sorted(ms for p in phases for ms in p.tally.latencies)
    errors = [e for p in phases for e in p.tally.errors]
    spans = [p.span for p in phases]
    q = statistics.mean(quiet)
    w = statistics.mean(p.rate for p in phases)
    return {
        "backend": backend,
        "requests": len(latencies),
        "req_s": len(latencies) / sum(spans),
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "quiet": q,
        "loaded": w,
        "drop": 100 * (q - w) / q if q else float("nan"),
        "api_cpu": 100 * statistics.mean(p.api_cpu for p in phases),
        "client_cpu": 100 * statistics.mean(p.client_cpu for p in phases),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per phase")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between a client's requests"
    )
    parser.add_argument("--rounds", type=int, default=1, help="quiet/loaded pairs (ends quiet)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--pg-url",
        default=PG_ADMIN,
    )
    args = parser.parse_args()
    print(
        f"{args.clients} clients, one request each per {args.interval:g} s, {args.duration:g} s "
        f"phases, {args.workers} workers, {os.cpu_count()} cores"
    )
    header = (
        "backend     requests  req/s   p50 ms  p99 ms  errors  trials/s quiet  loaded  drop"
        "   API CPU  clients CPU"
    )
    print(header)
    for backend in args.backends.split(","):
        r = run_backend(backend.strip(), args)
        print(
            f"{r['backend']:<11} {r['requests']:>8}  {r['req_s']:>5.1f}  {r['p50']:>6.1f}  "
            f"{r['p99']:>6.1f}  {r['errors']:>6}  {r['quiet']:>14.3f}  {r['loaded']:>6.3f}  "
            f"{r['drop']:>4.1f}%  {r['api_cpu']:>6.0f}%  {r['client_cpu']:>10.0f}%",
            flush=True,
        )
        if r["errors"]:
            print("  errors:", r["error_kinds"])


if __name__ == "__main__":
    main()
