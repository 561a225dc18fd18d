"""Batched trials: trials per second of random-search MLP studies run by real workers with
``--batch-trials K`` (several trials of a study trained as one stacked model, issue 25)
against K = 1, on digits and on an uploaded 20,000-row table, with 1 and 2 workers; with
``--datasets cnn``, a CNN on digits (``--conv``: its blocks' channels, 3x3, max-pooled).

Each configuration (dataset, workers, K) is one study on a fresh SQLite database (or, with
``--pg``, a fresh PostgreSQL one) run by ``python -m service.cli worker --study ID
--exit-when-idle --batch-trials K --threads T`` processes: the real claim, training and
recording path. The table is uploaded as users upload one (``search.datasets.
ingest_dataset``: a CSV of ``sklearn.datasets.make_classification``, fixed seed, 20
features, 3 classes). Every study draws the same slots (random search, one seed: lr
log-uniform, keep_prob, weight decay log-uniform; one hidden width, so every trial of a
stack has its width and each result is its result alone, to rounding), so each K must find
the same best dev loss; the largest per-slot difference from K = 1 is printed.

trials/s is the study's trials over the time from its first claim to its last trial's end
(the database's ``started_at`` / ``finished_at``: worker start-up and the winner's test
evaluation are left out; ``wall s`` includes them). Speedup is over K = 1 with the same
workers, taken within each round and then the median over rounds. Rounds interleave every
configuration (the order rotates each round) so the load of a shared machine hits all alike.

    .venv/bin/python bench/batched.py [--ks 1,4,8,16,32] [--workers 1,2] [--threads 1]
        [--datasets digits,table] [--trials 64] [--rounds 3] [--rows 20000]
        [--epochs-digits 20] [--epochs-table 5] [--epochs-cnn 10] [--conv 16,32]
        [--hidden 64] [--device cpu]
        [--pg ADMIN_URL] [--in-process] [--quick]

``--in-process`` runs the workers as threads of the script (``search.worker.Worker``), not
processes: the smoke test's way (tests/bench/test_batched.py), not a measurement.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout
sys.path.insert(0, str(ROOT / "bench"))

from _databases import PG_ADMIN, database  # noqa: E402
from sqlalchemy import select  # noqa: E402

from search import store  # noqa: E402
from search.datasets import Upload, ingest_dataset  # noqa: E402
from search.spec import ExperimentSpec  # noqa: E402
from search.studies import create_study  # noqa: E402

TABLE = "table"  # the uploaded table's name in --datasets
CNN = "cnn"  # digits through a CNN, in --datasets


@dataclass(frozen=True)
class Case:
    dataset: str
    workers: int
    k: int


@dataclass
class Result:
    trials: int  # complete
    failed: int
    seconds: float  # first claim to last end
    wall: float  # the workers' start to their exit
    values: dict[int, float]  # slot -> dev loss

    @property
    def rate(self) -> float:
        return self.trials / self.seconds if self.seconds > 0 else 0.0

    @property
    def best(self) -> float:
        return min(self.values.values()) if self.values else float("nan")


def table_csv(rows: int, seed: int = 0) -> bytes:
    """A 3-class table of ``rows`` rows, 20 numeric features (always the same bytes)."""
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows, n_features=20, n_informative=12, n_classes=3, random_state=seed
    )
    frame = pd.DataFrame(x.round(5), columns=[f"x{i}" for i in range(x.shape[1])])
    frame["label"] = [f"c{v}" for v in y]
    return frame.to_csv(index=False).encode()


def study_spec(case: Case, args: argparse.Namespace) -> dict[str, Any]:
    epochs = {TABLE: args.epochs_table, CNN: args.epochs_cnn}.get(case.dataset, args.epochs_digits)
    cnn = {"model": "cnn"} if case.dataset == CNN else {}
    conv = [{"channels": c} for c in args.conv]
    return {
        "name": f"batched-{case.dataset}-{case.workers}w-k{case.k}",
        "dataset": "digits" if case.dataset == CNN else case.dataset,
        **cnn,
        "search": {
            "sampler": "random",
            "n_trials": args.trials,
            "parallelism": args.trials,  # the workers' claims are the only limit
            "seed": 7,
            "space": {
                "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                "keep_prob": {"type": "float", "low": 0.5, "high": 0.95},
                "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
            },
        },
        "training": {
            "epochs": epochs,
            "batch_size": 64,
            "optimizer": "adam",
            "hidden": [args.hidden],
            **({"conv": conv} if cnn else {}),
        },
        "pruning": {"pruner": "none"},  # every slot trains its epochs, whatever the others
    }


def run_case(case: Case, csv: bytes | None, args: argparse.Namespace) -> Result:
    with database("postgresql" if args.pg else "sqlite", args.pg or PG_ADMIN) as url:
        factory = store.make_session_factory(url)
        if case.dataset == TABLE:
            assert csv is not None
            upload = Upload(io.BytesIO(csv), "table.csv", "label", name=TABLE)
            ingest_dataset(session_factory=factory, upload=upload)
        spec = ExperimentSpec.model_validate(study_spec(case, args))
        study_id = create_study(session_factory=factory, storage_url=url, spec=spec).id
        t0 = time.perf_counter()
        if args.in_process:
            run_in_process(url, study_id, case, args)
        else:
            run_processes(url, study_id, case, args)
        result = read_result(url, study_id, time.perf_counter() - t0)
        store.get_engine(url).dispose()
    return result


def run_processes(url: str, study_id: int, case: Case, args: argparse.Namespace) -> None:
    """``case.workers`` worker processes on the study, until it ends."""
    command = [sys.executable, "-m", "service.cli", "worker", "--db", url]
    command += ["--study", str(study_id), "--exit-when-idle", "--batch-trials", str(case.k)]
    command += ["--threads", str(args.threads), "--device", args.device]
    env = os.environ | {"PYTHONPATH": str(ROOT), "HPS_LOG_LEVEL": "WARNING"}
    procs = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        for _ in range(case.workers)
    ]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"{case}: a worker exited with {codes}")


def run_in_process(url: str, study_id: int, case: Case, args: argparse.Namespace) -> None:
    """``case.workers`` in-process workers (threads of this process: the smoke test's way,
    without a process start-up per study), until the study ends."""
    import torch

    from search.worker import Worker, WorkerOptions

    torch.set_num_threads(args.threads)
    options = WorkerOptions(
        db_url=url,
        device=args.device,
        study_id=study_id,
        exit_when_idle=True,
        batch_trials=case.k,
    )
    threads = [threading.Thread(target=Worker(options).run) for _ in range(case.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def read_result(url: str, study_id: int, wall: float) -> Result:
    t = store.TrialRow
    with store.session_scope(store.make_session_factory(url)) as session:
        rows = session.execute(
            select(t.slot, t.state, t.value, t.started_at, t.finished_at).where(
                t.study_id == study_id
            )
        ).all()
    done = [r for r in rows if r.state == store.T_COMPLETE and r.value is not None]
    ends = [r.finished_at for r in rows if r.finished_at is not None]
    seconds = (max(ends) - min(r.started_at for r in rows)).total_seconds() if ends else 0.0
    return Result(
        trials=len(done),
        failed=sum(r.state == store.T_FAIL for r in rows),
        seconds=seconds,
        wall=wall,
        values={r.slot: r.value for r in done},
    )


def rounds(
    cases: list[Case], csv: bytes | None, args: argparse.Namespace
) -> dict[Case, list[Result]]:
    """Every case once per round, the order rotated each round; Case -> its Results."""
    results: dict[Case, list[Result]] = {c: [] for c in cases}
    for r in range(args.rounds):
        shift = (r * len(cases)) // max(args.rounds, 1)
        for case in cases[shift:] + cases[:shift]:
            result = run_case(case, csv, args)
            results[case].append(result)
            print(
                f"# round {r + 1}: {case.dataset} {case.workers}w K={case.k}: "
                f"{result.trials} trials in {result.seconds:.2f} s ({result.rate:.2f}/s), "
                f"best {result.best:.5f}",
                file=sys.stderr,
                flush=True,
            )
    return results


def largest_gap(a: dict[int, float], b: dict[int, float]) -> float:
    """The largest |dev loss| difference over the slots both completed."""
    common = a.keys() & b.keys()
    return max((abs(a[s] - b[s]) for s in common), default=float("nan"))


HEADER = (
    f"{'dataset':<8} {'workers':>7} {'K':>3} {'trials':>6} {'claim-end s':>11} "
    f"{'wall s':>7} {'trials/s':>8} {'speedup':>7} {'best dev loss':>13} {'max gap':>8}"
)


def report(results: dict[Case, list[Result]], args: argparse.Namespace) -> list[str]:
    lines = [HEADER]
    best_rates: dict[tuple[str, int], tuple[float, int]] = {}
    for case, runs in results.items():
        base = results[Case(case.dataset, case.workers, 1)] if 1 in args.ks else runs
        speedups = [b.seconds / r.seconds for r, b in zip(runs, base, strict=True)]
        speedup = statistics.median(speedups)
        rate = statistics.median(r.rate for r in runs)
        gap = max(largest_gap(r.values, b.values) for r, b in zip(runs, base, strict=True))
        bests = sorted({f"{r.best:.5f}" for r in runs})
        failed = sum(r.failed for r in runs)
        lines.append(
            f"{case.dataset:<8} {case.workers:>7} {case.k:>3} "
            f"{statistics.median(r.trials for r in runs):>6.0f} "
            f"{statistics.median(r.seconds for r in runs):>11.2f} "
            f"{statistics.median(r.wall for r in runs):>7.1f} {rate:>8.2f} "
            f"{speedup:>6.2f}x {'/'.join(bests):>13} {gap:>8.1e}"
            + (f"  {failed} FAILED" if failed else "")
        )
        key = (case.dataset, case.workers)
        if key not in best_rates or speedup > best_rates[key][0]:
            best_rates[key] = (speedup, case.k)
    for (dataset, workers), (speedup, k) in best_rates.items():
        lines.append(f"# {dataset}, {workers} worker(s): best K = {k}, {speedup:.2f}x over K = 1")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ks", default="1,4,8,16,32", help="trials per stack, comma-separated")
    parser.add_argument("--workers", default="1,2", help="worker processes, comma-separated")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--datasets", default=f"digits,{TABLE}", help=f"built-in names, {TABLE}")
    parser.add_argument("--trials", type=int, default=64, help="n_trials of every study")
    parser.add_argument("--rounds", type=int, default=3, help="studies of each configuration")
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the uploaded table")
    parser.add_argument("--epochs-digits", type=int, default=20)
    parser.add_argument("--epochs-table", type=int, default=5)
    parser.add_argument("--epochs-cnn", type=int, default=10)
    parser.add_argument("--conv", default="16,32", help=f"{CNN}: channels of each 3x3 block")
    parser.add_argument("--hidden", type=int, default=64, help="the MLP's one hidden width")
    parser.add_argument("--device", default="cpu", help="the workers' device: cpu|cuda|auto")
    parser.add_argument("--pg", default=None, help="PostgreSQL admin URL (default: SQLite)")
    parser.add_argument(
        "--in-process", action="store_true", help="workers as threads of this process"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny studies")
    if "--quick" in (sys.argv[1:] if argv is None else argv):  # its sizes; flags still win
        parser.set_defaults(ks="1,4", workers="1", trials=8, rounds=1, rows=600)
        parser.set_defaults(epochs_digits=2, epochs_table=2, epochs_cnn=2, hidden=16, conv="4")
    args = parser.parse_args(argv)
    args.ks = [int(v) for v in args.ks.split(",") if v]
    args.workers = [int(v) for v in args.workers.split(",") if v]
    args.datasets = [v for v in args.datasets.split(",") if v]
    args.conv = [int(v) for v in args.conv.split(",") if v]
    numbers = [*args.ks, *args.workers, args.threads, args.trials, args.rounds, args.rows]
    numbers += [args.epochs_digits, args.epochs_table, args.epochs_cnn, args.hidden, *args.conv]
    if any(n < 1 for n in numbers) or not args.conv:
        parser.error("sizes, counts and epochs must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    cases = [Case(d, w, k) for d in args.datasets for w in args.workers for k in args.ks]
    print(
        f"# batched: {platform.node()}, {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.1f}, torch {torch.__version__}, workers on {args.device} with "
        f"{args.threads} thread(s), {'PostgreSQL' if args.pg else 'SQLite'}, "
        f"{args.rounds} round(s)"
    )
    print(
        f"# random search, {args.trials} trials: lr, keep_prob, weight_decay; MLP "
        f"{args.hidden} wide, Adam, batch 64; digits {args.epochs_digits} epochs, "
        f"{TABLE} ({args.rows} rows x 20 features, 3 classes, uploaded CSV) "
        f"{args.epochs_table} epochs"
        + (
            f"; {CNN}: digits through 3x3 blocks of {args.conv} channels, {args.epochs_cnn} epochs"
            if CNN in args.datasets
            else ""
        )
    )
    csv = table_csv(args.rows) if TABLE in args.datasets else None
    results = rounds(cases, csv, args)
    print("\n".join(report(results, args)))
    print(f"# load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
