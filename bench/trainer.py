"""Trainer: epoch time of hpsearch's training loop vs a minimal loop and a DataLoader loop.

Three ways to train the same network (same init seed, Adam, batch size, preloaded tensors):
``models.train`` as a trial runs it; a minimal hand-written loop (``randperm`` slicing);
and the textbook ``DataLoader(TensorDataset)`` loop (bench/_loops.py). Cases: an MLP on
digits and on a 20000x64 synthetic set, and a CNN on digits, at batch sizes 32, 64 and
256, with torch's threads pinned. Within a case the three alternate, rotating which goes
first each round, so drift in machine load hits all of them. The table shows median
milliseconds per epoch and, per variant, the median over rounds of its ratio to the
minimal loop in the same round. Target: hpsearch <= 1.1x the minimal loop.

    .venv/bin/python bench/trainer.py [--threads 1] [--epochs 5] [--rounds 6]
        [--batch-sizes 32,64,256] [--device cpu|cuda|auto] [--clock wall|cpu] [--options]

--clock cpu (process CPU time) ignores time spent descheduled on a busy machine (CPU only).
--options times each toolbox option (batch_norm, residual, l1, a cosine schedule with
warm-up, clip_norm, adamw, early stopping's per-epoch snapshot) on digits against a
minimal loop that does the same thing by hand (bench/_trainer_options.py), on the CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import pandas as pd
import torch
from _loops import VARIANTS, Clock, EpochTimes, synthetic_dataset
from _trainer_options import OPTIONS
from _trainer_options import reference_epoch_times as option_epoch_times

from models import ConvBlock, Dataset, TrainConfig, load_dataset, warm_up

TARGET_RATIO = 1.1
CLOCKS: dict[str, Clock] = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclasses.dataclass(frozen=True)
class Case:
    model: str  # "mlp" | "cnn"
    dataset: str
    data: Dataset
    hidden: tuple[int, ...]
    rounds_factor: float  # short epochs are noisy: more rounds


def cases(quick: bool) -> list[Case]:
    digits = load_dataset("digits")
    found = [Case("mlp", "digits", digits, (64,), 3), Case("cnn", "digits", digits, (64,), 2)]
    if not quick:
        found.insert(1, Case("mlp", "synthetic 20000x64", synthetic_dataset(), (256, 256), 0.5))
    return found


def config_for(case: Case, batch_size: int, epochs: int, device: str) -> TrainConfig:
    conv = {"conv": (ConvBlock(16), ConvBlock(32))} if case.model == "cnn" else {}
    return TrainConfig(
        model=case.model,
        hidden=case.hidden,
        batch_size=batch_size,
        epochs=epochs,
        device=device,
        **conv,  # type: ignore[arg-type]
    )


def interleaved(
    config: TrainConfig, data: Dataset, variants: dict[str, EpochTimes], rounds: int, clock: Clock
) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per epoch of each variant, and the median over rounds of each one's
    ratio to the first variant (the reference) in the same round. Round r starts with
    variant r mod len(variants): no variant always runs first (or right after a warm cache)."""
    names = list(variants)
    warm = dataclasses.replace(config, epochs=2)
    for name in names:
        variants[name](warm, data, clock)
    epochs: dict[str, list[float]] = {n: [] for n in names}
    ratios: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        this_round = {}
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times = variants[name](config, data, clock)
            epochs[name] += times
            this_round[name] = statistics.median(times)
        for name in names:
            ratios[name].append(this_round[name] / this_round[names[0]])
    medians = {n: statistics.median(epochs[n]) for n in names}
    return medians, {n: statistics.median(ratios[n]) for n in names}


def trainer_table(args: argparse.Namespace, clock: Clock) -> pd.DataFrame:
    # The minimal loop first: it is the reference the ratios divide by.
    variants = {k: VARIANTS[k] for k in ("minimal", "hpsearch", "DataLoader")}
    rows = []
    for case in cases(args.quick):
        for bs in args.batch_sizes:
            config = config_for(case, bs, args.epochs, args.device)
            rounds = max(2, round(args.rounds * case.rounds_factor))
            ms, ratio = interleaved(config, case.data, variants, rounds, clock)
            over = ratio["hpsearch"] > TARGET_RATIO
            rows.append(
                {
                    "model": case.model,
                    "data": case.dataset,
                    "hidden": str(case.hidden),
                    "batch": bs,
                    "hpsearch ms": ms["hpsearch"] * 1e3,
                    "minimal ms": ms["minimal"] * 1e3,
                    "DataLoader ms": ms["DataLoader"] * 1e3,
                    "hpsearch/minimal": ratio["hpsearch"],
                    "DataLoader/minimal": ratio["DataLoader"],
                    "rounds": rounds,
                    "target": f"over {TARGET_RATIO}x" if over else "ok",
                }
            )
    return pd.DataFrame(rows)


def options_table(args: argparse.Namespace, clock: Clock) -> pd.DataFrame:
    """Each toolbox option alone: ``train`` vs a minimal loop doing the same by hand."""
    data = load_dataset("digits")
    variants: dict[str, EpochTimes] = {
        "minimal": option_epoch_times,
        "hpsearch": VARIANTS["hpsearch"],
    }
    rows = []
    for label, fields in OPTIONS:
        config = TrainConfig(hidden=(64,), epochs=args.epochs, **fields)
        ms, ratio = interleaved(config, data, variants, 3 * args.rounds, clock)
        rows.append(
            {
                "option": label,
                "hpsearch ms": ms["hpsearch"] * 1e3,
                "minimal ms": ms["minimal"] * 1e3,
                "hpsearch/minimal": ratio["hpsearch"],
                "target": "ok" if ratio["hpsearch"] <= TARGET_RATIO else f"over {TARGET_RATIO}x",
            }
        )
    return pd.DataFrame(rows)


def _batch_sizes(text: str) -> list[int]:
    return [int(b) for b in text.split(",") if b.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run")
    parser.add_argument(
        "--rounds", type=int, default=6, help="rounds per case (x3 MLP, x2 CNN on digits)"
    )
    parser.add_argument("--batch-sizes", type=_batch_sizes, default=[32, 64, 256])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    parser.add_argument(
        "--clock", choices=sorted(CLOCKS), default="wall", help="cpu: process CPU time (CPU only)"
    )
    parser.add_argument("--quick", action="store_true", help="skip the 20000-row synthetic set")
    parser.add_argument("--options", action="store_true", help="time each toolbox option")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warm_up()
    clock: Callable[[], float] = CLOCKS[args.clock]
    load = os.getloadavg()[0]
    table = options_table(args, clock) if args.options else trainer_table(args, clock)
    print(
        f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} thread(s), "
        f"{args.clock} clock, {args.epochs} epochs per run; "
        f"load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
