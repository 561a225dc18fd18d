"""A trial stopped inside a stack leaves the checkpoint its run alone would leave: resumed
alone (``train(..., resume=...)``), it ends as the same configuration never stopped, and
its state has the same parts as an alone run's checkpoint (network, torch optimizer of its
kind with the same state per parameter, lr schedule, early stopping, generators).

Float64, one thread, as ``test_stacked.py`` (whose module docstring says why): the resumed
trial's losses within ``TOL`` of the uninterrupted run's."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from models import ConvBlock, EpochMetrics, TrainConfig, read_checkpoint, train, train_stacked
from tests.models.test_stacked import (  # noqa: F401
    CNN,
    _load,
    _stack,
    assert_same,
    float64,
    one_thread,
)

STOP_AT = (1, 2, 0, 3, 1, 2, 3, 2)  # trial k is stopped after epoch STOP_AT[k]

CASES: dict[str, list[TrainConfig]] = {
    "sgd, L2": _stack(lambda k: {"weight_decay": 0.01 * (k % 2)}, optimizer="sgd", epochs=5),
    "momentum, step schedule": _stack(
        lambda k: {"momentum": 0.5 + 0.05 * k},
        optimizer="momentum",
        lr=0.02,
        epochs=5,
        lr_schedule="step",
        lr_step_epochs=1,
    ),
    "adam, dropout, batch norm, early stopping": _stack(
        lambda k: {"keep_prob": 0.6 + 0.05 * k, "patience": (None, 1, 2)[k % 3]},
        hidden=(16, 8),
        batch_norm=True,
        keep_prob=0.8,
        epochs=5,
        lr=0.03,
    ),
    "adamw, cosine with warm-up": _stack(
        lambda k: {"weight_decay": 0.05 * (k % 3)},
        optimizer="adamw",
        epochs=5,
        lr_schedule="cosine",
        lr_warmup_epochs=1,
    ),
    "rmsprop, padded widths, residual": _stack(
        lambda k: {"hidden": ((16, 16, 8), (12, 12, 8), (20, 20, 8), (10, 10, 6))[k % 4]},
        optimizer="rmsprop",
        lr=1e-3,
        epochs=5,
        residual=True,
    ),
    "cnn, conv batch norm, adam, dropout, padded head": _stack(
        lambda k: {"keep_prob": 0.6 + 0.05 * k, "hidden": ((16,), (12,))[k % 2]},
        **CNN | {"conv": (ConvBlock(4, batch_norm=True), ConvBlock(6, pool="avg"))},
        keep_prob=0.8,
        epochs=5,
    ),
}


def _stopper(at: int) -> Callable[[EpochMetrics], bool]:
    return lambda m: m.epoch == at


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("case", list(CASES))
def test_a_trial_stopped_in_a_stack_resumes_alone_as_never_stopped(case: str) -> None:
    configs = CASES[case]
    data = _load("digits")
    stopped = train_stacked(configs, data, [_stopper(at) for at in STOP_AT])
    for k, (config, result) in enumerate(zip(configs, stopped, strict=True)):
        if result.status != "stopped":  # early stopping ended it first
            assert result.checkpoint is None
            continue
        assert result.checkpoint is not None and result.epochs_run == STOP_AT[k]
        mine = read_checkpoint(result.checkpoint())
        alone_stop = train(config, data, _stopper(STOP_AT[k]))
        assert alone_stop.checkpoint is not None
        theirs = read_checkpoint(alone_stop.checkpoint())
        assert (mine.epoch, mine.config_key) == (theirs.epoch, theirs.config_key)
        assert mine.state.keys() == theirs.state.keys()
        assert mine.state["scheduler"] == theirs.state["scheduler"]
        assert mine.state["lr"] == theirs.state["lr"]
        ours, alone = mine.state["optimizer"], theirs.state["optimizer"]
        assert ours["param_groups"] == alone["param_groups"]
        assert {i: set(s) for i, s in ours["state"].items()} == {
            i: set(s) for i, s in alone["state"].items()
        }
        assert_same(train(config, data), train(config, data, resume=mine))
