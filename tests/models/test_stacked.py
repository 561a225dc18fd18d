"""Stacked training (models.train_stacked) gives each trial what it gets alone (models.train).

Every case stacks 8 trials that differ in seed, lr and the option under test (and whatever
else may differ within a stack), trains the stack once and each trial alone, and asserts
per trial: the same status, reason, epochs run, best / early-stop epoch, lr per epoch and
dev accuracy per epoch; the initial loss, per-epoch train and dev losses within ``TOL``
(relative above 1: a diverging loss reaches 1e23) and final weights within ``WEIGHT_TOL``.
On the CPU, with one thread, in float64: a stack's batched matmuls and a trial's own sum in
orders that depend on the CPU's kernels (bmm and mm vectorise differently on AVX2 and
AVX-512), and in float32 a chaotic trial (lr 2 to 100, or an early stop decided by 0.01)
amplifies that last-bit difference into another epoch count or dev accuracy, as it would
between two CPUs alone. In float64 the same arithmetic stays within 1e-12 on any CPU, so
these tests check that a stack does each trial's own arithmetic, whatever the machine.

Measured (torch 2.13 CPU, 1 thread, AMD EPYC with AVX-512): float64, largest loss deviation
5.6e-13 (early stopping; 2.3e-13 batch norm, <= 9e-15 in the other cases). float32, the
cases without a chaotic trial: losses within 4.1e-4 with batch norm and dropout (one trial
of 8; 2.6e-6 the next), within 5.4e-7 in every other case, weights within 1.2e-4; an
earlier Intel machine with AVX2 gave bitwise equal weights. ``TOL32`` checks those losses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import torch

from models import (
    ConvBlock,
    Dataset,
    EpochMetrics,
    TrainConfig,
    TrainResult,
    auto_stack_size,
    check_stack,
    load_dataset,
    stack_groups,
    train,
    train_stacked,
)

TOL = 1e-9  # float64 per-epoch losses, stacked vs alone, relative above 1 (measured 5.6e-13)
WEIGHT_TOL = 1e-9  # float64 final weights
TOL32 = 1e-3  # float32 per-epoch losses of the cases in FLOAT32 (measured 4.1e-4)
K = 8
BASE = TrainConfig(hidden=(16,), epochs=3, optimizer="adam", lr=3e-3, batch_size=64)
LR_FACTORS = (1.0, 0.5, 2.0, 0.25, 1.5, 0.75, 3.0, 1.25)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def float64() -> Iterator[None]:
    """Models built in float64 (with ``_load``'s float64 data); see the module docstring."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(dtype)


def _load(name: str) -> Dataset:
    """The dataset with its float tensors in the default dtype (float64 under ``float64``)."""
    data = load_dataset(name)
    dtype = torch.get_default_dtype()
    fields = ("train_x", "train_y", "dev_x", "dev_y", "test_x", "test_y")
    tensors = {f: getattr(data, f) for f in fields}
    return replace(data, **{f: t.to(dtype) for f, t in tensors.items() if t.is_floating_point()})


def _stack(vary: Callable[[int], dict[str, Any]], **base: Any) -> list[TrainConfig]:
    """K configs: seed k, lr times LR_FACTORS[k], then ``vary(k)``'s knobs."""
    first = replace(BASE, **base)
    return [
        replace(first, **({"seed": k, "lr": first.lr * LR_FACTORS[k]} | vary(k))) for k in range(K)
    ]


def _none(k: int) -> dict[str, Any]:
    return {}


CNN: dict[str, Any] = {"model": "cnn", "conv": (ConvBlock(4), ConvBlock(6, pool="avg"))}


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
    pairs = zip(_losses(alone), _losses(stacked), strict=True)
    gap = max(_deviation(a, b) for a, b in pairs)
    assert gap <= TOL
    assert (stacked.final is None) == (alone.final is None)
    if alone.final is not None and stacked.final is not None:
        assert stacked.final.epoch == alone.final.epoch
        assert _deviation(alone.final.dev_loss, stacked.final.dev_loss) <= TOL
    assert (stacked.model is None) == (alone.model is None)
    if alone.model is not None and stacked.model is not None:
        mine, theirs = stacked.model.state_dict(), alone.model.state_dict()
        assert mine.keys() == theirs.keys()
        for name, value in theirs.items():
            torch.testing.assert_close(mine[name], value, atol=WEIGHT_TOL, rtol=WEIGHT_TOL)
        assert stacked.train_scores is not None and alone.train_scores is not None
        assert _deviation(alone.train_scores.loss, stacked.train_scores.loss) <= TOL
    return gap


def _deviation(a: float, b: float) -> float:
    """|a - b|, relative above 1 (a diverging loss can reach 1e23); 0 for equal non-finite
    values (NaN included), inf for a finite and a non-finite one."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return 0.0 if (a == b or (math.isnan(a) and math.isnan(b))) else math.inf
    return abs(a - b) / max(1.0, abs(a))


def _losses(result: TrainResult) -> list[float]:
    return [result.initial_loss, *result.train_loss, *result.dev_loss]


def stacks_train_as_alone(name: str, configs: list[TrainConfig]) -> None:
    """Each trial of ``configs`` trained in one stack on dataset ``name`` is itself alone
    (``assert_same``; in float64 under the ``float64`` fixture)."""
    data = _load(name)
    for config, result in zip(configs, train_stacked(configs, data), strict=True):
        assert_same(train(config, data), result)


def float32_stacks_track_alone(name: str, configs: list[TrainConfig]) -> None:
    """In float32, the same status and epochs, and losses within ``TOL32``."""
    data = load_dataset(name)
    for config, stacked in zip(configs, train_stacked(configs, data), strict=True):
        alone = train(config, data)
        assert (stacked.status, stacked.epochs_run) == (alone.status, alone.epochs_run)
        pairs = zip(_losses(alone), _losses(stacked), strict=True)
        assert max(_deviation(a, b) for a, b in pairs) <= TOL32


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("case", list(CASES))
def test_each_trial_of_a_stack_trains_as_alone(case: str) -> None:
    stacks_train_as_alone(*CASES[case])


CHAOTIC = ("early stopping", "divergence")
FLOAT32 = [case for case in CASES if case not in CHAOTIC]


@pytest.mark.parametrize("case", FLOAT32)
def test_float32_stacks_track_their_trials_alone(case: str) -> None:
    """In float32 (what workers train in) a stack's losses stay within rounding of each
    trial's alone; weights and dev accuracy are left to the float64 test."""
    float32_stacks_track_alone(*CASES[case])


@pytest.mark.usefixtures("float64")
def test_a_trial_leaves_the_stack_as_soon_as_it_ends() -> None:
    """Trial 2 diverges in epoch 1; trials 0, 3, 4 are stopped by their callbacks (as a
    pruner's verdict stops them) after epochs 0, 1, 2. Each end is reported at once, before
    the stack trains another epoch, and every trial ends as it does alone."""
    data = _load("digits")
    configs = _stack(lambda k: {"lr": 40.0 if k == 2 else 0.05}, optimizer="sgd", epochs=4)
    stop_after = {0: 0, 3: 1, 4: 2}
    events: list[tuple[str, int, int]] = []

    def callback(k: int) -> Callable[[EpochMetrics], bool]:
        def on_epoch(m: EpochMetrics) -> bool:
            events.append(("epoch", m.epoch, k))
            return stop_after.get(k) == m.epoch

        return on_epoch

    together: list[list[int]] = []

    def on_end(results: dict[int, TrainResult]) -> None:
        together.append(list(results))
        events.extend(("end", result.epochs_run, k) for k, result in results.items())

    results = train_stacked(configs, data, [callback(k) for k in range(K)], on_end)
    ends = {k: i for i, (kind, _, k) in enumerate(events) if kind == "end"}
    assert list(ends) == [0, 2, 3, 4, 1, 5, 6, 7]  # in the order they ended
    assert together == [[0], [2], [3], [4], [1, 5, 6, 7]]  # those ending at once: one call
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
        replace(BASE, **CNN),
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
        check_stack([replace(BASE, model="synthetic")])
    with pytest.raises(ValueError, match=r"\['model', 'conv', 'conv_head'\]"):
        check_stack([BASE, replace(BASE, **CNN)])
    with pytest.raises(ValueError, match=r"\['conv'\]"):  # the channels, say, must agree
        check_stack([replace(BASE, **CNN), replace(BASE, **CNN | {"conv": (ConvBlock(4),)})])
    with pytest.raises(ValueError, match=r"\['conv_head'\]"):
        check_stack([replace(BASE, **CNN), replace(BASE, **CNN, conv_head="flatten")])
    with pytest.raises(ValueError, match="on_epoch"):
        train_stacked([BASE, BASE], load_dataset("iris"), [None])


def test_auto_stacks_fewer_trials_of_larger_networks() -> None:
    """``--batch-trials auto`` on the CPU: the best K measured per size (AUTO_STACK's
    comment), fewer trials for larger networks, and 1 where stacking was slower."""
    sizes = [1_539, 4_810, 19_210, 76_810, 307_210]  # bench/batched.py, bench/stacked_kernel.py
    assert [auto_stack_size(n, "cpu") for n in sizes] == [32, 32, 8, 4, 1]
    for device in ("cpu", "cuda"):
        ks = [auto_stack_size(10**e, device) for e in range(2, 9)]
        assert ks == sorted(ks, reverse=True) and ks[-1] == 1
