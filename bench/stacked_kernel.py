"""Stacked kernel: K MLP (or CNN) trials one after another vs the same K trials as one
stacked model.

The trainer alone, no study, no database: K random configurations (lr log-uniform in
[1e-4, 1e-2], keep_prob uniform in [0.5, 1), each trial its own seed, so its own init,
shuffle and dropout masks) of one MLP on digits (64-64-10 by default, Adam, batch 64,
30 epochs), trained by ``models.train`` one after another and by ``models.train_stacked``
as one stack, with torch's threads pinned. Each K alternates the two for ``--rounds``
rounds (which goes first alternates too) and reports the median seconds of each, the
speedup, trials per second, and the largest difference between a trial's per-epoch losses
trained alone and stacked (they should agree to float32 rounding).

    .venv/bin/python bench/stacked_kernel.py [--ks 1,8,32] [--epochs 30] [--rounds 1]
        [--threads 1] [--hidden 64] [--vary-widths] [--clock wall|cpu] [--conv 16,32]

--clock cpu (process CPU time) ignores time spent descheduled on a busy machine.
--vary-widths draws each trial's width log-uniform in [16, hidden] (the stack pads them
to the widest). --conv C1,C2,... trains a CNN instead: 3x3 blocks of those channels, each
max-pooled, then the hidden layer (``--batch-trials auto``'s CNN calibration). Not the
worker-level benchmark (studies, claims, database): that is the integration's (issue 25);
this measures what stacking buys the training loop itself.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import torch

from models import (
    ConvBlock,
    Dataset,
    TrainConfig,
    TrainResult,
    load_dataset,
    train,
    train_stacked,
    warm_up,
)

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def configs(k: int, base: TrainConfig, *, vary_widths: bool, seed: int = 0) -> list[TrainConfig]:
    """K random trials around ``base`` (a fixed seed, so every run draws the same)."""
    rng = random.Random(seed)
    widest = base.hidden[0]
    found = []
    for i in range(k):
        width = round(math.exp(rng.uniform(math.log(16), math.log(widest))))
        found.append(
            replace(
                base,
                lr=math.exp(rng.uniform(math.log(1e-4), math.log(1e-2))),
                keep_prob=rng.uniform(0.5, 1.0 - 1e-9),
                hidden=(width,) if vary_widths else base.hidden,
                seed=1000 + i,
            )
        )
    return found


def one_by_one(trials: list[TrainConfig], data: Dataset) -> list[TrainResult]:
    return [train(c, data) for c in trials]


def largest_gap(alone: list[TrainResult], stacked: list[TrainResult]) -> float:
    """The largest |loss alone - loss stacked| over every trial, epoch and curve."""
    gaps = [
        abs(a - b)
        for x, y in zip(alone, stacked, strict=True)
        for a, b in zip(x.train_loss + x.dev_loss, y.train_loss + y.dev_loss, strict=True)
    ]
    return max(gaps)


def measure(k: int, data: Dataset, base: TrainConfig, args: argparse.Namespace) -> dict[str, float]:
    trials = configs(k, base, vary_widths=args.vary_widths)
    clock = CLOCKS[args.clock]
    times: dict[str, list[float]] = {"alone": [], "stacked": []}
    results: dict[str, list[TrainResult]] = {}
    for r in range(args.rounds):
        order = ["alone", "stacked"] if r % 2 == 0 else ["stacked", "alone"]
        for name in order:
            start = clock()
            run = one_by_one if name == "alone" else train_stacked
            results[name] = run(trials, data)
            times[name].append(clock() - start)
    alone, stacked = statistics.median(times["alone"]), statistics.median(times["stacked"])
    return {
        "alone_s": alone,
        "stacked_s": stacked,
        "speedup": alone / stacked,
        "trials_per_s": k / stacked,
        "gap": largest_gap(results["alone"], results["stacked"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--ks", default="1,8,32", help="stack sizes, comma-separated")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=1, help="alternations of the two ways")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--hidden", type=int, default=64, help="hidden width (the widest)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--vary-widths", action="store_true", help="widths in [16, hidden]")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--conv", default="", help="a CNN's channels per 3x3 block (else MLP)")
    args = parser.parse_args()
    conv = tuple(ConvBlock(int(c)) for c in args.conv.split(",") if c)
    torch.set_num_threads(args.threads)
    warm_up()
    data = load_dataset("digits")
    base = TrainConfig(
        hidden=(args.hidden,), optimizer="adam", batch_size=args.batch_size, epochs=args.epochs
    )
    if conv:
        base = replace(base, model="cnn", conv=conv)
    shape = f"{data.n_features}-{args.hidden}-{data.n_classes}"
    net = f"CNN ({args.conv} channels, 3x3, max-pooled, then {shape})" if conv else f"{shape} MLP"
    print(
        f"digits {net}, Adam, dropout, "
        f"batch {args.batch_size}, {args.epochs} epochs, {args.threads} thread(s), "
        f"{args.clock} clock" + (", widths in [16, hidden]" if args.vary_widths else "")
    )
    print(f"{'K':>3} {'alone s':>8} {'stacked s':>9} {'speedup':>7} {'trials/s':>8} {'max gap':>8}")
    for k in (int(v) for v in args.ks.split(",")):
        m = measure(k, data, base, args)
        print(
            f"{k:>3} {m['alone_s']:>8.2f} {m['stacked_s']:>9.2f} {m['speedup']:>6.1f}x "
            f"{m['trials_per_s']:>8.1f} {m['gap']:>8.1e}"
        )


if __name__ == "__main__":
    main()
