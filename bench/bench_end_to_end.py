"""End-to-end efficiency: how close `hpsearch serve` with N workers gets to the ideal.

A study of identical-cost digits trials is submitted over REST to `hpsearch serve
--workers N` (a fresh SQLite file, threads split between the workers as `serve` does);
wall time runs from the POST to the study's `completed`. The ideal is the trials' pure
training time (``models.train`` on the same configuration in this process, with the
same threads, median of a few runs) x n_trials / N. Efficiency = ideal / wall.

    .venv/bin/python bench/bench_end_to_end.py [--trials 40] [--epochs 20] [--workers 2]

``--epochs 20`` gives trials of about 0.3 s on the project's 2-core machine; ``--epochs
65`` about 1 s.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

from models import TrainConfig, load_dataset, train


def spec(trials: int, workers: int, epochs: int) -> dict[str, object]:
    return {
        "name": "e2e-bench",
        "dataset": "digits",
        "search": {
            "sampler": "random",
            "n_trials": trials,
            "parallelism": workers,
            "space": {"keep_prob": {"type": "float", "low": 0.8, "high": 1.0}},
        },
        "training": {"epochs": epochs, "batch_size": 64, "hidden": [64], "lr": 1e-3},
    }


def pure_training_s(epochs: int, threads: int, runs: int = 5) -> float:
    torch.set_num_threads(threads)
    data = load_dataset("digits")
    config = TrainConfig(epochs=epochs, batch_size=64, hidden=(64,), lr=1e-3, keep_prob=0.9)
    train(config, data)  # warm up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        train(config, data)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_study(trials: int, workers: int, epochs: int, threads: int) -> float:
    db = f"sqlite:///{Path(tempfile.mkdtemp()) / 'e2e.db'}"
    port = free_port()
    env = os.environ | {
        "HPS_DATABASE_URL": db,
        "HPS_THREADS": str(threads),
        "HPS_LOG_LEVEL": "WARNING",
    }
    cmd = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
    cmd += ["--workers", str(workers)]
    server = subprocess.Popen(cmd, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("server never became healthy")
            time.sleep(0.2)
        time.sleep(5)  # let the workers finish starting (imports), as a running service has
        t0 = time.perf_counter()
        r = httpx.post(f"{base}/studies", json=spec(trials, workers, epochs), timeout=30)
        r.raise_for_status()
        study_id = r.json()["id"]
        while httpx.get(f"{base}/studies/{study_id}", timeout=10).json()["status"] != "completed":
            time.sleep(0.02)
        return time.perf_counter() - t0
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="studies run; the median is shown")
    args = parser.parse_args()
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    per_trial = pure_training_s(args.epochs, threads)
    ideal = per_trial * args.trials / args.workers
    walls = [
        run_study(args.trials, args.workers, args.epochs, threads) for _ in range(args.repeats)
    ]
    wall = statistics.median(walls)
    print(
        f"{args.trials} trials x {per_trial:.2f} s pure training, {args.workers} workers "
        f"x {threads} thread(s): ideal {ideal:.1f} s"
    )
    print(f"wall {wall:.1f} s (runs: {', '.join(f'{w:.1f}' for w in walls)})")
    print(f"efficiency {ideal / wall:.0%}")


if __name__ == "__main__":
    main()
