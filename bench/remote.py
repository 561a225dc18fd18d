"""A remote trial (claim, 20 reports, complete) over hpsearch's REST trial API next to the
same trial through Optuna's gRPC storage proxy; and the REST API's report latency under load.

Cost (per backend: SQLite file, PostgreSQL throwaway database; the same database for both):
a real ``hpsearch serve --workers 0`` and Optuna's ``run_grpc_proxy_server`` (in front of an
RDBStorage with hpsearch's engine settings, Optuna's cache around it) run side by side, each
in its own process. For each pruner (none, median) and number of clients (1: one trial at a
time; N: N client processes at once), each path gets a fresh study, its clients run
``--warm-up`` trials each (not counted), then ``--rounds`` blocks of ``--block`` trials
alternate between the paths (ABBA). Printed: the median of the blocks' wall time per trial
(with N clients, the block's wall over its trials: the inverse of throughput), the REST/gRPC
ratio (the median of the rounds' ratios, and their range), and the CPU per trial of the
server process, the clients and PostgreSQL's processes (SQLite runs inside the servers).
The clients are in ``bench/_remote_clients.py``; every trial makes all its calls (none is
pruned: every trial reports the same curve, which the median pruner still reads).

Load: ``hpsearch serve --workers 2`` training a digits study (as
``bench/load.py``), and ``--reporters`` clients of a ``model: external`` study, each
claiming a trial, reporting ``--load-epochs`` epochs at ``--hz`` and completing it, again and
again (``bench/_reporters.py``), in ``--load-rounds`` loaded phases between quiet ones.
Printed: report p50/p99 latency, errors (any non-200 or transport error), the report rate
achieved against the rate offered, and the workers' trials/s quiet and loaded.

    .venv/bin/python bench/remote.py [--backends sqlite,postgresql] [--pruners none,median]
        [--clients 1,4] [--rounds 6] [--block 20] [--warm-up 3] [--auth on]
        [--parts cost,load] [--reporters 100] [--hz 10] [--load-epochs 50] [--load-rounds 6]
        [--duration 5] [--pg URL] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import optuna
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _databases import BACKENDS, PG_ADMIN, database  # noqa: E402
from _remote_clients import (  # noqa: E402
    Block,
    Clients,
    Target,
    external_spec,
    optuna_pruner,
    quiet_optuna,
)
from _remote_load import print_load_header, print_load_row, run_load, serving  # noqa: E402
from _serve import free_port  # noqa: E402
from load import cpu_seconds, server_cpu, server_used  # noqa: E402

PATHS = ("rest", "grpc")


@dataclass(frozen=True)
class Servers:
    """The two servers of one database: hpsearch's API and Optuna's gRPC proxy."""

    rest_port: int
    grpc_port: int
    pids: dict[str, int]  # path -> server pid
    key: str | None
    database: str | None  # PostgreSQL's database name (its processes' CPU is counted)


def _grpc_ready(port: int) -> bool:
    storage = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port)
    try:
        storage.wait_server_ready(timeout=1)
        return True
    except ConnectionError:  # not serving yet
        return False
    finally:
        storage.close()


@contextlib.contextmanager
def servers(backend: str, url: str, auth: str) -> Iterator[Servers]:
    """``hpsearch serve --workers 0`` and Optuna's gRPC proxy on ``url``, stopped after."""
    port = free_port()
    proxy = [sys.executable, str(Path(__file__).parent / "_remote_clients.py"), url, str(port)]
    with serving(url, auth, 0) as rest:
        proc = subprocess.Popen(proxy, start_new_session=True, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not _grpc_ready(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the gRPC proxy did not start (exit {proc.returncode})")
            database = make_url(url).database if backend == "postgresql" else None
            pids = {"rest": rest.proc.pid, "grpc": proc.pid}
            yield Servers(rest.port, port, pids, rest.key, database)
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def targets(s: Servers, pruner: str, n_trials: int, clients: int) -> dict[str, Target]:
    """A fresh study on each path: an external one over REST, an Optuna one over gRPC."""
    headers = {"Authorization": f"Bearer {s.key}"} if s.key else {}
    spec = external_spec(f"remote-{pruner}-{clients}", pruner, n_trials, clients)
    url = f"http://127.0.0.1:{s.rest_port}/api/v1/studies"
    answer = httpx.post(url, json=spec, headers=headers, timeout=30)
    answer.raise_for_status()
    name = f"grpc-{pruner}-{clients}-{uuid.uuid4().hex[:8]}"
    optuna.create_study(
        study_name=name,
        storage=optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=s.grpc_port),
        direction="maximize",
        pruner=optuna_pruner(pruner),
    )
    rest = Target("rest", "127.0.0.1", s.rest_port, str(answer.json()["id"]), pruner, s.key)
    return {"rest": rest, "grpc": Target("grpc", "127.0.0.1", s.grpc_port, name, pruner)}


@dataclass(frozen=True)
class Sample:
    """One block of one path, per trial."""

    wall_ms: float
    server_ms: float  # CPU of the server process
    client_ms: float  # CPU of the client processes
    db_ms: float  # CPU of PostgreSQL's processes (0 on SQLite)


def sample(clients: Clients, per_client: int, pid: int, database: str | None) -> Sample:
    cpu0, db0 = cpu_seconds(pid), server_cpu(database)
    block: Block = clients.block(per_client)
    server, db = cpu_seconds(pid) - cpu0, server_used(database, db0)
    if block.pruned:
        raise SystemExit(f"{block.pruned} trials were pruned: the paths made different calls")
    ms = 1000 / block.trials
    return Sample(block.wall * ms, server * ms, block.client_cpu * ms, db * ms)


@dataclass(frozen=True)
class CostRow:
    backend: str
    pruner: str
    clients: int
    samples: dict[str, list[Sample]]

    def median(self, path: str, field: str) -> float:
        return statistics.median(getattr(s, field) for s in self.samples[path])

    def ratios(self) -> list[float]:
        pairs = zip(self.samples["rest"], self.samples["grpc"], strict=True)
        return [r.wall_ms / g.wall_ms for r, g in pairs]


def cost(backend: str, s: Servers, pruner: str, n: int, args: argparse.Namespace) -> CostRow:
    """Both paths with ``n`` clients each: warm-up, then ``--rounds`` alternating blocks."""
    per_client = max(1, args.block // n)
    n_trials = n * (args.warm_up + args.rounds * per_client) + n
    found = targets(s, pruner, n_trials, n)
    pools = {path: Clients(found[path], n) for path in PATHS}
    samples: dict[str, list[Sample]] = {path: [] for path in PATHS}
    try:
        for pool in pools.values():
            pool.block(args.warm_up)
        for i in range(args.rounds):
            for path in PATHS if i % 2 == 0 else PATHS[::-1]:
                samples[path].append(sample(pools[path], per_client, s.pids[path], s.database))
    finally:
        for pool in pools.values():
            pool.close()
    return CostRow(backend, pruner, n, samples)


def print_cost_header() -> None:
    print(
        f"{'database':<11} {'pruner':<7} {'clients':>7} {'REST ms':>8} {'gRPC ms':>8} "
        f"{'REST/gRPC (range)':<20} {'CPU ms/trial REST: server client db':>36}  "
        f"{'gRPC: server client db':>23}",
        flush=True,
    )


def print_cost_row(r: CostRow) -> None:
    ratios = r.ratios()
    ratio = f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
    cpu = {
        path: "".join(f"{r.median(path, f):>7.1f}" for f in ("server_ms", "client_ms", "db_ms"))
        for path in PATHS
    }
    print(
        f"{r.backend:<11} {r.pruner:<7} {r.clients:>7} {r.median('rest', 'wall_ms'):>8.1f} "
        f"{r.median('grpc', 'wall_ms'):>8.1f} {ratio:<20} {cpu['rest']:>36}  "
        f"{cpu['grpc']:>23}",
        flush=True,
    )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--backends", default="sqlite,postgresql", help="comma-separated")
    p.add_argument("--pruners", default="none,median", help="none and/or median")
    p.add_argument(
        "--clients", help="client processes at once, each count (default 1,4; --quick 1,2)"
    )
    p.add_argument("--rounds", type=int, default=6, help="alternating blocks per path")
    p.add_argument("--block", type=int, default=20, help="trials per block (all clients)")
    p.add_argument("--warm-up", type=int, default=3, help="trials per client, not counted")
    p.add_argument("--auth", choices=("on", "off"), default="on", help="HPS_AUTH of the API")
    p.add_argument("--parts", default="cost,load", help="cost and/or load")
    p.add_argument("--reporters", type=int, default=100, help="load: reporting clients")
    p.add_argument("--hz", type=float, default=10.0, help="load: reports/s of each client")
    p.add_argument("--load-epochs", type=int, default=50, help="load: reports per trial")
    p.add_argument("--load-pruner", default="none", help="load: the study's pruner")
    p.add_argument("--load-rounds", type=int, default=6, help="load: loaded phases")
    p.add_argument("--duration", type=float, default=5.0, help="load: seconds per phase")
    p.add_argument("--workers", type=int, default=2, help="load: built-in workers")
    p.add_argument("--pg", default=PG_ADMIN, help="PostgreSQL server (admin URL)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny everything")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.block, args.warm_up = 2, 2, 1
        args.clients = args.clients or "1,2"
        args.reporters, args.load_epochs, args.load_rounds, args.duration = 4, 5, 1, 1.0
    args.backends, args.pruners = args.backends.split(","), args.pruners.split(",")
    args.clients = [int(n) for n in (args.clients or "1,4").split(",")]
    if any(b not in BACKENDS for b in args.backends):
        p.error("--backends: sqlite and/or postgresql")
    if any(x not in ("none", "median") for x in [*args.pruners, args.load_pruner]):
        p.error("pruners: none and/or median")
    if min([args.rounds, args.block, *args.clients, args.reporters, args.load_rounds]) < 1:
        p.error("--rounds, --block, --clients, --reporters and --load-rounds must be >= 1")
    args.parts = args.parts.split(",")
    if not args.parts or any(x not in ("cost", "load") for x in args.parts):
        p.error("--parts: cost and/or load")
    return args


def main() -> None:
    args = parse_args()
    quiet_optuna()
    print(
        f"# remote: {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
        f"optuna {optuna.__version__}, HPS_AUTH={args.auth}, claim + 20 reports + complete "
        f"per trial, {args.rounds} rounds x {args.block} trials, warm-up {args.warm_up}"
        "/client",
        flush=True,
    )
    if "cost" in args.parts:
        print_cost_header()
        for backend in args.backends:
            with database(backend, args.pg) as url, servers(backend, url, args.auth) as s:
                for pruner in args.pruners:
                    for n in args.clients:
                        print_cost_row(cost(backend, s, pruner, n, args))
    if "load" in args.parts:
        print_load_header(args)
        for backend in args.backends:
            with database(backend, args.pg) as url:
                print_load_row(run_load(backend, url, args))


if __name__ == "__main__":
    main()
