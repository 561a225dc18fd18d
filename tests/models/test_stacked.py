"""Stacked training (models.train_stacked) gives each trial what it gets alone (models.train).

Every case stacks 8 trials that differ in seed, lr and the option under test (and whatever
else may differ within a stack), trains the stack once and each trial alone, and asserts
per trial: the same status, reason, epochs run, best / early-stop epoch, lr per epoch and
dev accuracy per epoch; the initial loss and per-epoch train and dev losses within ``TOL``
(relative above 1: a diverging loss reaches 1e23); final weights within ``WEIGHT_TOL``. On
the CPU, with one thread.

Measured (torch 2.13 CPU, 1 thread, these cases): at equal widths the final weights are
bitwise equal to the trial's alone in every case, and so are the dev losses; the largest
deviation, 2.3e-7 (divergence case; 1.0e-7 to 2.0e-7 in the others, 0 for regression), is
in the reported train loss only: a stack takes each trial's batch mean of the cross-entropy
in another reduction order, which changes the reported value, not the gradient. Padded
widths: weights within 1.2e-7, losses within 1.1e-7 (the matmuls also sum over the zero
padding, in another order; over 30 epochs a chaotic high-lr trial can amplify that to 1e-4,
which is why stack_groups pads only when asked). TOL and WEIGHT_TOL leave room for other
CPUs' vector widths and kernels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import torch

from models import (
    EpochMetrics,
    TrainConfig,
    TrainResult,
    check_stack,
    load_dataset,
    stack_groups,
    train,
    train_stacked,
)

TOL = 1e-5  # per-epoch losses, stacked vs alone, relative above 1 (measured: <= 2.3e-7)
WEIGHT_TOL = 1e-4  # final weights (measured: bitwise at equal widths, 1.2e-7 padded)
K = 8
BASE = TrainConfig(hidden=(16,), epochs=3, optimizer="adam", lr=3e-3, batch_size=64)
LR_FACTORS = (1.0, 0.5, 2.0, 0.25, 1.5, 0.75, 3.0, 1.25)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _stack(vary: Callable[[int], dict[str, Any]], **base: Any) -> list[TrainConfig]:
    """K configs: seed k, lr times LR_FACTORS[k], then ``vary(k)``'s knobs."""
    first = replace(BASE, **base)
    return [
        replace(first, **({"seed": k, "lr": first.lr * LR_FACTORS[k]} | vary(k))) for k in range(K)
    ]


def _none(k: int) -> dict[str, Any]:
    return {}


CASES: dict[str, tuple[str, list[TrainConfig]]] = {
    "relu he": ("digits", _stack(_none)),
    "tanh, inits": (
        "digits",
        _stack(lambda k: {"weight_init": ("xavier", "he", "normal")[k % 3]}, activation="tanh"),
    ),
    "sigmoid normal": ("digits", _stack(_none, activation="sigmoid", weight_init="normal")),
    "leaky_relu xavier": ("digits", _stack(_none, activation="leaky_relu", weight_init="xavier")),
    "sgd, L2": (
        "digits",
        _stack(lambda k: {"weight_decay": 0.01 * (k % 3)}, optimizer="sgd", lr=0.05),
    ),
    "momentum": (
        "digits",
        _stack(
            lambda k: {"momentum": 0.5 + 0.06 * k, "weight_decay": 1e-3 * (k % 2)},
            optimizer="momentum",
            lr=0.02,
        ),
    ),
    "adam, L2": ("digits", _stack(lambda k: {"weight_decay": 1e-3 * (k % 3)})),
    "adamw": ("digits", _stack(lambda k: {"weight_decay": 0.05 * (k % 3)}, optimizer="adamw")),
    "rmsprop, L2": (
        "digits",
        _stack(lambda k: {"weight_decay": 1e-3 * (k % 2)}, optimizer="rmsprop", lr=1e-3),
    ),
    "dropout": ("digits", _stack(lambda k: {"keep_prob": 0.5 + 0.06 * k}, keep_prob=0.8)),
    "L1": ("digits", _stack(lambda k: {"l1": 1e-4 * (k % 3)})),
    "batch norm": (
        "digits",
        _stack(
            lambda k: {"keep_prob": 0.6 + 0.05 * k}, hidden=(16, 8), batch_norm=True, keep_prob=0.8
        ),
    ),
    "residual": ("digits", _stack(_none, hidden=(16, 16, 16, 8, 8), residual=True)),
    "residual, batch norm": (
        "digits",
        _stack(
            lambda k: {"keep_prob": 0.7 + 0.03 * k},
            hidden=(16, 16, 16),
            residual=True,
            batch_norm=True,
            keep_prob=0.8,
            activation="sigmoid",
        ),
    ),
    "schedules": (
        "digits",
        _stack(
            lambda k: {
                "lr_schedule": ("constant", "step", "exponential", "cosine")[k % 4],
                "lr_warmup_epochs": k % 2,
                "lr_step_epochs": 1,
                "lr_gamma": 0.5 + 0.05 * k,
            },
            epochs=4,
        ),
    ),
    "clipping": (
        "digits",
        _stack(lambda k: {"clip_norm": (None, 0.1, 0.5, 2.0)[k % 4]}, lr=0.05, optimizer="sgd"),
    ),
    "early stopping": (
        "digits",
        _stack(
            lambda k: {
                "patience": (None, 1, 2)[k % 3],
                "min_delta": 0.01 * (k % 2),
                "epochs": 4 + k,
            },
            lr=0.03,
        ),
    ),
    "divergence": (  # the divergence rule (3x) and, with the rule off, non-finite losses
        "digits",
        _stack(
            lambda k: {
                "lr": (0.05, 2.0, 8.0, 0.5, 40.0, 1.0, 100.0, 4.0)[k],
                "divergence_factor": math.inf if k in (1, 4, 6) else 3.0,
            },
            optimizer="sgd",
        ),
    ),
    "augmentation": (
        "digits",
        _stack(lambda k: {"augment_shift": k % 3, "augment_rotation": 5.0 * (k % 4)}),
    ),
    "regression": (
        "diabetes",
        _stack(
            lambda k: {"keep_prob": 0.7 + 0.04 * k}, optimizer="momentum", lr=0.01, keep_prob=0.9
        ),
    ),
    "padded widths": (
        "digits",
        _stack(
            lambda k: {
                "hidden": (
                    (16, 8),
                    (32, 16),
                    (20, 20),
                    (7, 30),
                    (32, 16),
                    (5, 5),
                    (31, 2),
                    (16, 16),
                )[k],
                "keep_prob": 0.6 + 0.05 * k,
            },
            activation="sigmoid",
            keep_prob=0.8,
        ),
    ),
}


def assert_same(alone: TrainResult, stacked: TrainResult) -> float:
    """Assert ``stacked`` is ``alone`` up to rounding; the largest loss deviation."""
    facts = ("status", "reason", "epochs_run", "best_epoch", "stopped_early_at", "lr")
    assert [getattr(stacked, f) for f in facts] == [getattr(alone, f) for f in facts]
    assert stacked.dev_accuracy == alone.dev_accuracy
    assert len(stacked.train_loss) == len(alone.train_loss) == len(stacked.dev_loss)
    pairs = zip(
        [alone.initial_loss, *alone.train_loss, *alone.dev_loss],
        [stacked.initial_loss, *stacked.train_loss, *stacked.dev_loss],
        strict=True,
    )
    gap = max(_deviation(a, b) for a, b in pairs)
    assert gap <= TOL
    assert (stacked.final is None) == (alone.final is None)
    if alone.final is not None and stacked.final is not None:
        assert stacked.final.epoch == alone.final.epoch
        assert stacked.final.dev_loss == pytest.approx(alone.final.dev_loss, abs=TOL)
    assert (stacked.model is None) == (alone.model is None)
    if alone.model is not None and stacked.model is not None:
        mine, theirs = stacked.model.state_dict(), alone.model.state_dict()
        assert mine.keys() == theirs.keys()
        for name, value in theirs.items():
            torch.testing.assert_close(mine[name], value, atol=WEIGHT_TOL, rtol=0)
        assert stacked.train_scores is not None and alone.train_scores is not None
        assert stacked.train_scores.loss == pytest.approx(alone.train_scores.loss, abs=TOL)
    return gap


def _deviation(a: float, b: float) -> float:
    """|a - b|, relative above 1 (a diverging loss can reach 1e23); 0 for equal non-finite
    values (NaN included), inf for a finite and a non-finite one."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return 0.0 if (a == b or (math.isnan(a) and math.isnan(b))) else math.inf
    return abs(a - b) / max(1.0, abs(a))


@pytest.mark.parametrize("case", list(CASES))
def test_each_trial_of_a_stack_trains_as_alone(case: str) -> None:
    name, configs = CASES[case]
    data = load_dataset(name)
    stacked = train_stacked(configs, data)
    for config, result in zip(configs, stacked, strict=True):
        assert_same(train(config, data), result)


def test_a_trial_leaves_the_stack_as_soon_as_it_ends() -> None:
    """Trial 2 diverges in epoch 1; trials 0, 3, 4 are stopped by their callbacks (as a
    pruner's verdict stops them) after epochs 0, 1, 2. Each end is reported at once, before
    the stack trains another epoch, and every trial ends as it does alone."""
    data = load_dataset("digits")
    configs = _stack(lambda k: {"lr": 40.0 if k == 2 else 0.05}, optimizer="sgd", epochs=4)
    stop_after = {0: 0, 3: 1, 4: 2}
    events: list[tuple[str, int, int]] = []

    def callback(k: int) -> Callable[[EpochMetrics], bool]:
        def on_epoch(m: EpochMetrics) -> bool:
            events.append(("epoch", m.epoch, k))
            return stop_after.get(k) == m.epoch

        return on_epoch

    def on_end(k: int, result: TrainResult) -> None:
        events.append(("end", result.epochs_run, k))

    results = train_stacked(configs, data, [callback(k) for k in range(K)], on_end)
    ends = {k: i for i, (kind, _, k) in enumerate(events) if kind == "end"}
    assert list(ends) == [0, 2, 3, 4, 1, 5, 6, 7]  # in the order they ended
    for k, last in {**stop_after, 2: 0}.items():
        later = [e for e in events[ends[k] + 1 :] if e[0] == "epoch"]
        assert later and all(epoch > last for _, epoch, _ in later)
        assert not any(e == ("epoch", last + 1, k) for e in events)
    assert [r.status for r in results] == ["stopped", "completed", "diverged"] + [
        "stopped",
        "stopped",
    ] + ["completed"] * 3
    for k, (config, result) in enumerate(zip(configs, results, strict=True)):
        assert_same(train(config, data, lambda m, k=k: stop_after.get(k) == m.epoch), result)


def test_stack_groups_keep_what_a_stack_shares_together() -> None:
    configs = [
        BASE,
        replace(BASE, seed=1, lr=0.1, keep_prob=0.5),  # keep_prob < 1: dropout on
        replace(BASE, optimizer="sgd"),
        replace(BASE, hidden=(16, 16)),
        replace(BASE, model="cnn"),
        replace(BASE, hidden=(20,), l1=1e-3, patience=2, epochs=9),
        replace(BASE, hidden=(512,)),
        replace(BASE, batch_size=32),
        replace(BASE, seed=3),
    ]
    exact = stack_groups(configs)  # equal widths only
    assert exact == [[0, 8], [1], [2], [3], [4], [5], [6], [7]]
    padded = stack_groups(configs, max_padding=2.0)
    assert sorted(i for g in padded for i in g) == list(range(len(configs)))
    assert [0, 5, 8] in padded  # widths 16 and 20 pad cheaply; 512 does not
    assert [4] in padded and [6] in padded and [1] in padded
    for group in padded:
        if configs[group[0]].model == "mlp":
            check_stack([configs[i] for i in group])
    assert max(len(g) for g in stack_groups(configs, max_trials=2, max_padding=2.0)) == 2
    assert stack_groups(configs[::-1]) == [[0, 8], [1], [2], [3], [4], [5], [6], [7]]


def test_check_stack_names_what_differs() -> None:
    with pytest.raises(ValueError, match="optimizer"):
        check_stack([BASE, replace(BASE, optimizer="sgd")])
    with pytest.raises(ValueError, match="batch_size"):
        check_stack([BASE, replace(BASE, batch_size=32)])
    with pytest.raises(ValueError, match="shortcuts"):  # identity vs projection block
        check_stack(
            [
                replace(BASE, hidden=(8, 8, 8), residual=True),
                replace(BASE, hidden=(8, 4, 4), residual=True),
            ]
        )
    with pytest.raises(ValueError, match="not stacked"):
        check_stack([replace(BASE, model="cnn")])
    with pytest.raises(ValueError, match="on_epoch"):
        train_stacked([BASE, BASE], load_dataset("iris"), [None])
