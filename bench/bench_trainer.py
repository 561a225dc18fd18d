"""Trainer overhead: epoch time of ``models.train`` vs a minimal hand-written PyTorch loop.

Both sides train the same network, an MLP or a CNN (same init seed), on the same
preloaded tensors with the same optimizer, batch size and augmentation, shuffle with
``torch.randperm`` slicing, and compute the dev loss once per epoch (``train`` does too).
The trainer additionally reads the running loss for its divergence guard and reports the
epoch to a callback. Runs alternate between the
two sides to spread machine noise evenly. The table shows median epoch times, their ratio,
and the median of per-run ratios ("paired"). On a busy machine prefer --threads 1: with
every core in use, multi-threaded epochs of small models are dominated by scheduling noise,
and --clock cpu (process CPU time instead of wall time) ignores time spent descheduled.

    .venv/bin/python bench/bench_trainer.py [--threads N] [--epochs E] [--repeats R]
        [--device cpu|cuda|auto] [--clock wall|cpu] [--options]

--options times each toolbox option (batch_norm, residual, l1, a cosine schedule with
warm-up, clip_norm, adamw, early stopping's per-epoch snapshot) on digits against a
minimal loop that does the same thing by hand (bench/_options.py), on the CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import torch
import torch.nn.functional as F
from _options import OPTIONS
from _options import reference_epoch_times as option_reference_epoch_times

from models import (
    CNN,
    MLP,
    Augment,
    ConvBlock,
    Dataset,
    TrainConfig,
    load_dataset,
    resolve_device,
    train,
)

TARGET_RATIO = 1.1
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def synthetic_dataset(n: int = 20000, n_features: int = 64, n_classes: int = 10) -> Dataset:
    """A separable-ish classification set from a random linear teacher, split 60/20/20."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, n_features, generator=g)  # (N, F)
    teacher = torch.randn(n_features, n_classes, generator=g)  # (F, C)
    y = (x @ teacher + 0.5 * torch.randn(n, n_classes, generator=g)).argmax(dim=1)  # (N,)
    a, b = int(0.6 * n), int(0.8 * n)
    return Dataset(
        name=f"synthetic{n}x{n_features}",
        task="classification",
        n_features=n_features,
        n_classes=n_classes,
        train_x=x[:a],
        train_y=y[:a],
        dev_x=x[a:b],
        dev_y=y[a:b],
        test_x=x[b:],
        test_y=y[b:],
    )


def trainer_epoch_times(
    config: TrainConfig, data: Dataset, clock: Callable[[], float]
) -> list[float]:
    """Seconds per epoch of ``train``: the gaps between consecutive ``on_epoch`` calls."""
    stamps: list[float] = []

    def on_epoch(_: object) -> None:
        stamps.append(clock())

    result = train(config, data, on_epoch)
    assert result.status == "completed", result.status
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def reference_epoch_times(
    config: TrainConfig, data: Dataset, clock: Callable[[], float]
) -> list[float]:
    """The minimal loop: Adam, randperm slicing (each batch augmented when the config says
    so), one dev-loss evaluation per epoch."""
    device = resolve_device(config.device)
    data = data.to(device)
    torch.manual_seed(config.seed)
    model: torch.nn.Module = MLP(data.n_features, config.hidden, data.n_classes)
    if config.model == "cnn":
        assert data.image_shape is not None
        model = CNN(data.image_shape, config.conv, config.hidden, data.n_classes)
    model = model.to(device)
    augment = None
    if config.augment_shift or config.augment_rotation:
        augment = Augment(data, config.augment_shift, config.augment_rotation)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    x, y, n, bs = data.train_x, data.train_y, data.train_x.shape[0], config.batch_size
    times = []
    for _ in range(config.epochs):
        start = clock()
        model.train()
        perm = torch.randperm(n, generator=generator, device=device)  # (N,)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]  # (B,)
            xb = x[idx] if augment is None else augment(x[idx], generator)
            loss = F.cross_entropy(model(xb), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            F.cross_entropy(model(data.dev_x), data.dev_y).item()
        times.append(clock() - start)
    return times


def bench(
    data: Dataset,
    config: TrainConfig,
    repeats: int,
    clock: Callable[[], float],
    reference: Callable[[TrainConfig, Dataset, Callable[[], float]], list[float]] | None = None,
) -> tuple[float, float, float]:
    """Median epoch seconds of (trainer, reference) over ``repeats`` alternating runs, and
    the median over runs of each pair's ratio (robust to slow drift in machine load)."""
    reference = reference or reference_epoch_times
    warm_up = dataclasses.replace(config, epochs=3)
    trainer_epoch_times(warm_up, data, clock)
    reference(warm_up, data, clock)
    ours: list[float] = []
    ref: list[float] = []
    paired: list[float] = []
    for _ in range(repeats):
        ours_run = trainer_epoch_times(config, data, clock)
        ref_run = reference(config, data, clock)
        paired.append(statistics.median(ours_run) / statistics.median(ref_run))
        ours += ours_run
        ref += ref_run
    return statistics.median(ours), statistics.median(ref), statistics.median(paired)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=4, help="runs per side, x10 on digits")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    parser.add_argument(
        "--clock", choices=sorted(CLOCKS), default="wall", help="cpu: process CPU time (CPU only)"
    )
    parser.add_argument("--options", action="store_true", help="time each toolbox option")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.options:
        return bench_options(args.epochs, 10 * args.repeats, CLOCKS[args.clock])
    digits = load_dataset("digits")
    cnn = {"model": "cnn", "conv": (ConvBlock(16), ConvBlock(32))}
    augmented = cnn | {"augment_shift": 1, "augment_rotation": 10.0}
    cases: list[tuple[str, Dataset, tuple[int, ...], dict[str, Any], int]] = [
        # (name, data, hidden, other settings, repeats): small epochs are noisy, run more
        ("digits", digits, (64,), {}, 10 * args.repeats),
        ("synthetic 20000x64", synthetic_dataset(), (256, 256), {}, args.repeats),
        ("digits cnn", digits, (64,), cnn, 2 * args.repeats),
        ("digits cnn+augment", digits, (64,), augmented, 2 * args.repeats),
    ]
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, device {args.device}, threads {threads}, {args.clock} clock")
    header = f"{'dataset':<20} {'hidden':<11} {'train() ms':>10} {'minimal ms':>10} {'ratio':>6}"
    print(f"{header} {'paired':>6}")
    for name, data, hidden, settings, repeats in cases:
        config = TrainConfig(hidden=hidden, epochs=args.epochs, device=args.device, **settings)
        ours, ref, paired = bench(data, config, repeats, CLOCKS[args.clock])
        ratio = ours / ref
        flag = "" if min(ratio, paired) <= TARGET_RATIO else f"  (over the {TARGET_RATIO}x target)"
        row = f"{name:<20} {hidden!s:<11} {ours * 1e3:>10.2f} {ref * 1e3:>10.2f} {ratio:>6.3f}"
        print(f"{row} {paired:>6.3f}{flag}")


def bench_options(epochs: int, repeats: int, clock: Callable[[], float]) -> None:
    data = load_dataset("digits")
    print(f"torch {torch.__version__}, cpu, threads {torch.get_num_threads()}, digits (64,)")
    print(f"{'option':<16} {'train() ms':>10} {'minimal ms':>10} {'ratio':>6} {'paired':>6}")
    for label, fields in OPTIONS:
        config = TrainConfig(hidden=(64,), epochs=epochs, **fields)
        ours, ref, paired = bench(data, config, repeats, clock, option_reference_epoch_times)
        ratio = ours / ref
        flag = "" if min(ratio, paired) <= TARGET_RATIO else f"  (over the {TARGET_RATIO}x target)"
        print(
            f"{label:<16} {ours * 1e3:>10.2f} {ref * 1e3:>10.2f} {ratio:>6.3f} {paired:>6.3f}{flag}"
        )


if __name__ == "__main__":
    main()
