"""The measurement behind the initial-loss flag (``search.initial_loss``): the ratio of an
untrained network's loss to the expectation (ln C, or 1 on standardised regression
targets) on every built-in dataset, for sane configurations (every activation, weight init,
width/depth, batch norm and residual setting, several seeds) and for broken ones (weights
drawn with std 1, inputs 10x and 50x their standardised scale).

    .venv/bin/python bench/initial_loss.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import itertools

import torch

from models import ACTIVATIONS, DATASETS, MLP, WEIGHT_INITS, evaluate, load_dataset
from search.initial_loss import INITIAL_LOSS_FACTOR, expected_initial_loss

SHAPES = ((64,), (256, 256), (32, 32, 32, 32))


def _ratio(net: MLP, x: torch.Tensor, y: torch.Tensor, task: str, expected: float) -> float:
    return evaluate(net, x, y, task)[0] / expected


def sane(name: str, seeds: int) -> tuple[float, float]:
    d = load_dataset(name)
    expected = expected_initial_loss(d.task, d.n_classes) or 1.0
    ratios = []
    options = itertools.product(ACTIVATIONS, WEIGHT_INITS, SHAPES, (False, True), (False, True))
    for activation, init, hidden, bn, residual in options:
        for seed in range(seeds):
            torch.manual_seed(seed)
            net = MLP(d.n_features, hidden, d.n_classes or 1, activation=activation,
                      weight_init=init, batch_norm=bn, residual=residual)  # fmt: skip
            ratios.append(_ratio(net, d.train_x, d.train_y, d.task, expected))
    return min(ratios), max(ratios)


def broken(name: str) -> dict[str, float]:
    d = load_dataset(name)
    expected = expected_initial_loss(d.task, d.n_classes) or 1.0
    out = {}
    for label, weight_scale, input_scale in (("std 1", 100.0, 1.0), ("x10", 1, 10), ("x50", 1, 50)):
        torch.manual_seed(0)
        init = "normal" if weight_scale != 1 else "he"  # normal: std 0.01, times 100
        net = MLP(d.n_features, (64,), d.n_classes or 1, weight_init=init)
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(weight_scale)
        out[label] = _ratio(net, d.train_x * input_scale, d.train_y, d.task, expected)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print(f"flag: more than {INITIAL_LOSS_FACTOR:g}x off either way")
    print(f"{'dataset':14} {'sane min':>9} {'sane max':>9} {'std 1':>8} {'x10':>8} {'x50':>8}")
    for name in DATASETS:
        low, high = sane(name, args.seeds)
        bad = broken(name)
        cells = " ".join(f"{bad[k]:8.2f}" for k in ("std 1", "x10", "x50"))
        print(f"{name:14} {low:9.2f} {high:9.2f} {cells}")


if __name__ == "__main__":
    main()
