"""The synthetic model: its analytic loss, its curves and its contract with ``train``."""

from __future__ import annotations

import math
from typing import Any

import pytest

import models._synthetic as synthetic
from models import EpochMetrics, TrainConfig, synthetic_dev_loss, synthetic_gap, train_synthetic

OPTIMUM = TrainConfig(model="synthetic", lr=3e-3, keep_prob=0.8)


def test_the_gap_is_zero_at_the_optimum_and_grows_away_from_it() -> None:
    assert synthetic_gap(OPTIMUM) == pytest.approx(0.0)
    moves: list[dict[str, Any]] = [
        {"lr": 1e-3},
        {"lr": 1e-2},
        {"keep_prob": 0.5},
        {"keep_prob": 1.0},
        {"batch_size": 16},
        {"batch_size": 512},
        {"hidden": (32,)},
        {"hidden": (64, 64)},
        {"weight_decay": 1e-2},
        {"optimizer": "sgd"},
    ]
    for move in moves:
        assert synthetic_gap(_with(move)) > 0.0, move
    # Further from the optimum is worse, on a log scale for the learning rate.
    gaps = [synthetic_gap(_with({"lr": lr})) for lr in (3e-3, 1e-3, 1e-4, 1e-5)]
    assert gaps == sorted(gaps) and len(set(gaps)) == 4
    assert synthetic_gap(_with({"lr": 3e-4})) == pytest.approx(synthetic_gap(_with({"lr": 3e-2})))


def test_the_learning_rate_matters_more_than_the_batch_size() -> None:
    # a tenth of the best lr costs over 3 times what a quarter of the best batch size does
    assert synthetic_gap(_with({"lr": 3e-4})) > 3 * synthetic_gap(_with({"batch_size": 16}))


def test_momentum_matters_only_for_the_momentum_optimizer() -> None:
    assert synthetic_gap(_with({"momentum": 0.0})) == synthetic_gap(OPTIMUM)
    with_momentum = _with({"optimizer": "momentum"})
    assert synthetic_gap(_with({"optimizer": "momentum", "momentum": 0.0})) > synthetic_gap(
        with_momentum
    )


def test_the_curve_falls_from_the_initial_loss_to_its_asymptote() -> None:
    curve = [synthetic_dev_loss(OPTIMUM, e) for e in range(40)]
    assert curve[0] == synthetic.INITIAL_LOSS
    assert all(a > b for a, b in zip(curve, curve[1:], strict=False))
    assert curve[-1] == pytest.approx(synthetic.FLOOR, abs=1e-5)
    slow = _with({"lr": 1e-5})
    assert synthetic_dev_loss(slow, 10) > synthetic_dev_loss(OPTIMUM, 10)


def test_a_run_reports_every_epoch_and_keeps_no_network() -> None:
    seen: list[EpochMetrics] = []
    result = train_synthetic(_with({"epochs": 5}), None, seen.append)
    assert [m.epoch for m in seen] == [0, 1, 2, 3, 4, 5]
    assert (result.status, result.epochs_run, result.model) == ("completed", 5, None)
    assert result.initial_loss == synthetic.INITIAL_LOSS == result.train_loss[0]
    assert result.dev_loss == [synthetic_dev_loss(_with({"epochs": 5}), e) for e in range(6)]
    assert result.dev_accuracy == [None] * 6 and result.final == seen[-1]
    # Dropout: the train loss sits below the dev loss when keep_prob is high.
    assert all(t < d for t, d in zip(result.train_loss[1:], result.dev_loss[1:], strict=True))


def test_each_epoch_sleeps_the_set_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(synthetic.time, "sleep", slept.append)
    train_synthetic(_with({"epochs": 4, "seconds_per_epoch": 0.25}))
    assert slept == [0.25] * 4  # none for epoch 0, the initial loss


def test_the_callback_stops_the_run() -> None:
    result = train_synthetic(_with({"epochs": 10}), None, lambda m: m.epoch == 3)
    assert (result.status, result.reason, result.epochs_run) == ("stopped", "stopped", 3)
    assert len(result.dev_loss) == 4


def test_a_learning_rate_above_the_limit_diverges() -> None:
    config = _with({"lr": 1.0, "epochs": 20, "divergence_factor": 3.0})
    result = train_synthetic(config)
    assert (result.status, result.reason) == ("diverged", "diverged")
    assert result.epochs_run < 5 and max(result.train_loss) <= 3.0 * synthetic.INITIAL_LOSS
    assert math.isinf(synthetic_dev_loss(_with({"lr": 100.0}), 10_000))


def test_noise_is_seeded() -> None:
    noisy = _with({"noise": 0.2, "epochs": 8, "seed": 7})
    first, again = train_synthetic(noisy), train_synthetic(noisy)
    other = train_synthetic(_with({"noise": 0.2, "epochs": 8, "seed": 8}))
    assert first.dev_loss == again.dev_loss
    assert first.dev_loss != other.dev_loss
    assert first.dev_loss != train_synthetic(_with({"epochs": 8, "seed": 7})).dev_loss
    assert first.dev_loss[0] == synthetic.INITIAL_LOSS  # the initial loss has no noise


@pytest.mark.parametrize(
    ("field", "value"),
    [("seconds_per_epoch", -1.0), ("seconds_per_epoch", math.inf), ("noise", -0.1)],
)
def test_config_refuses_bad_settings(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        _with({field: value})


def _with(changes: dict[str, Any]) -> TrainConfig:
    fields = {"model": "synthetic", "lr": OPTIMUM.lr, "keep_prob": OPTIMUM.keep_prob}
    return TrainConfig(**(fields | changes))
