"""End-to-end efficiency: how close `hpsearch serve` with N workers gets to the ideal.

A study of identical-cost digits trials is submitted over REST to `hpsearch serve
--workers N` (a fresh SQLite file, threads split between the workers as `serve` does);
wall time runs from the study's creation to its completion (its own `created_at` and
`finished_at`: the API is polled at a watching client's pace, not fast enough to steal
the cores). The ideal is the same training
with nothing around it: N processes, started together, each running ``models.train`` on
the same configuration n_trials / N times (wall time of the slowest), so both figures see
the same cores shared the same way. The two alternate; efficiency = median ideal /
median wall.

    .venv/bin/python bench/bench_end_to_end.py [--trials 40] [--epochs 20] [--workers 2]
        [--device cpu|cuda|auto]

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
from datetime import datetime
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


def pure_loop(trials: int, epochs: int, threads: int, device: str = "cpu") -> None:
    """One of the ideal's processes: warm up, wait for "go" on stdin, train ``trials``
    times, print the seconds taken."""
    torch.set_num_threads(threads)
    data = load_dataset("digits")
    config = TrainConfig(
        epochs=epochs, batch_size=64, hidden=(64,), lr=1e-3, keep_prob=0.9, device=device
    )
    train(config, data)  # warm up
    print("ready", flush=True)
    sys.stdin.readline()
    t0 = time.perf_counter()
    for _ in range(trials):
        train(config, data)
    print(time.perf_counter() - t0, flush=True)


def ideal_s(trials: int, workers: int, epochs: int, threads: int, device: str) -> float:
    here = Path(__file__).resolve().parent
    loop = f"pure_loop({trials // workers}, {epochs}, {threads}, {device!r})"
    code = f"from bench_end_to_end import pure_loop; {loop}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=here,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    seconds = [float(p.communicate()[0]) for p in procs]
    return max(seconds)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_study(trials: int, workers: int, epochs: int, threads: int, device: str) -> float:
    db = f"sqlite:///{Path(tempfile.mkdtemp()) / 'e2e.db'}"
    port = free_port()
    env = os.environ | {
        "HPS_DATABASE_URL": db,
        "HPS_THREADS": str(threads),
        "HPS_LOG_LEVEL": "WARNING",
        "HPS_DEVICE": device,  # the local workers' device
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
        r = httpx.post(f"{base}/studies", json=spec(trials, workers, epochs), timeout=30)
        r.raise_for_status()
        study = r.json()
        while study["status"] != "completed":
            time.sleep(0.5)  # a watching client's pace: polling must not steal the cores
            study = httpx.get(f"{base}/studies/{study['id']}", timeout=10).json()
        created, finished = (
            datetime.fromisoformat(study[k]) for k in ("created_at", "finished_at")
        )
        return (finished - created).total_seconds()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; medians shown")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (trials' device)")
    args = parser.parse_args()
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    ideals, walls = [], []
    for _ in range(args.repeats):
        ideals.append(ideal_s(args.trials, args.workers, args.epochs, threads, args.device))
        walls.append(run_study(args.trials, args.workers, args.epochs, threads, args.device))
    ideal, wall = statistics.median(ideals), statistics.median(walls)
    per_trial = ideal * args.workers / args.trials
    print(
        f"{args.trials} trials of {args.epochs} epochs ({per_trial:.2f} s each), "
        f"{args.workers} workers x {threads} thread(s) on {args.device}"
    )
    print(f"ideal {ideal:.1f} s (runs: {', '.join(f'{w:.1f}' for w in ideals)})")
    print(f"hpsearch {wall:.1f} s (runs: {', '.join(f'{w:.1f}' for w in walls)})")
    print(f"efficiency {ideal / wall:.0%}")


if __name__ == "__main__":
    main()
