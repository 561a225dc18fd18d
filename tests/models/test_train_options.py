"""L1, learning-rate schedules, gradient clipping and early stopping in the training loop."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from models import LR_SCHEDULES, MLP, TrainConfig, evaluate, load_dataset, train
from models._step import make_step


def _weights(model: nn.Module | None) -> torch.Tensor:
    assert model is not None
    return torch.cat(
        [m.weight.detach().flatten() for m in model.modules() if isinstance(m, nn.Linear)]
    )


def test_large_l1_leaves_more_weights_near_zero() -> None:
    data = load_dataset("digits")
    common = {"hidden": (32,), "optimizer": "sgd", "lr": 0.1, "epochs": 10}
    plain = train(TrainConfig(**common), data)
    sparse = train(TrainConfig(l1=1e-2, **common), data)
    assert plain.status == sparse.status == "completed"
    near_zero_plain = float((_weights(plain.model).abs() < 1e-2).float().mean())
    near_zero_sparse = float((_weights(sparse.model).abs() < 1e-2).float().mean())
    assert near_zero_sparse > 0.3
    assert near_zero_sparse > 4 * near_zero_plain
    # the reported training loss is the data loss alone, comparable with the initial loss
    assert sparse.train_loss[-1] < sparse.initial_loss


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ({"lr_schedule": "constant"}, [1, 1, 1, 1, 1, 1]),
        (
            {"lr_schedule": "step", "lr_step_epochs": 2, "lr_gamma": 0.5},
            [1, 1, 0.5, 0.5, 0.25, 0.25],
        ),
        ({"lr_schedule": "exponential", "lr_gamma": 0.5}, [1, 0.5, 0.25, 0.125, 0.0625, 0.03125]),
        (
            {"lr_schedule": "cosine"},
            [(1 + math.cos(math.pi * t / 6)) / 2 for t in range(6)],
        ),
        (
            {"lr_schedule": "constant", "lr_warmup_epochs": 3},
            [0.25, 0.5, 0.75, 1, 1, 1],
        ),
        (
            {"lr_schedule": "step", "lr_warmup_epochs": 2, "lr_step_epochs": 1, "lr_gamma": 0.1},
            [1 / 3, 2 / 3, 1, 0.1, 0.01, 0.001],
        ),
        (
            {"lr_schedule": "cosine", "lr_warmup_epochs": 2},
            [1 / 3, 2 / 3, *((1 + math.cos(math.pi * t / 4)) / 2 for t in range(4))],
        ),
    ],
)
def test_lr_used_per_epoch_follows_the_schedule(
    schedule: dict[str, object], expected: list[float]
) -> None:
    assert schedule["lr_schedule"] in LR_SCHEDULES
    config = TrainConfig(lr=0.01, epochs=6, hidden=(8,), **schedule)  # type: ignore[arg-type]
    result = train(config, load_dataset("iris"))
    assert result.status == "completed"
    assert result.lr == pytest.approx([0.01 * f for f in expected])


def test_schedule_changes_training() -> None:
    data = load_dataset("iris")
    constant = train(TrainConfig(lr=0.01, epochs=4, hidden=(8,)), data)
    decayed = train(
        TrainConfig(lr=0.01, epochs=4, hidden=(8,), lr_schedule="exponential", lr_gamma=0.1), data
    )
    assert constant.train_loss[1] == pytest.approx(decayed.train_loss[1])  # same first epoch
    assert constant.train_loss[2:] != pytest.approx(decayed.train_loss[2:], rel=1e-4)


def test_clip_norm_bounds_one_sgd_update() -> None:
    lr, clip = 0.1, 0.5
    for clip_norm, bounded in ((clip, True), (None, False)):
        torch.manual_seed(0)
        model = MLP(4, (16,), 3)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        x = torch.randn(32, 4) * 1e4  # (B, F): huge inputs, huge gradients
        loss = nn.functional.cross_entropy(model(x), torch.randint(0, 3, (32,)))
        make_step(model, optimizer, clip_norm=clip_norm)(loss)
        after = torch.cat([p.detach().flatten() for p in model.parameters()])
        update = float((after - before).norm())
        if bounded:
            assert update <= lr * clip * (1 + 1e-4)
            assert update == pytest.approx(lr * clip, rel=1e-3)  # the gradient was clipped
        else:
            assert update > 100 * lr * clip


def test_clip_norm_changes_training() -> None:
    data = load_dataset("iris")
    free = train(TrainConfig(optimizer="sgd", lr=0.1, epochs=2, hidden=(8,)), data)
    clipped = train(
        TrainConfig(optimizer="sgd", lr=0.1, epochs=2, hidden=(8,), clip_norm=1e-3), data
    )
    assert clipped.status == "completed"
    assert clipped.train_loss[1:] != pytest.approx(free.train_loss[1:], rel=1e-4)


def test_early_stopping_on_a_plateau_ends_before_the_budget() -> None:
    data = load_dataset("digits")
    # lr so small that no epoch improves the dev loss by min_delta
    config = TrainConfig(lr=1e-7, epochs=30, patience=3, min_delta=1e-3)
    result = train(config, data)
    assert result.status == "completed" and result.reason is None
    assert result.stopped_early_at == 4 and result.epochs_run == 4  # best 1, then 3 without
    assert result.best_epoch == 1
    assert len(result.dev_loss) == 5  # the curves keep every epoch run


def test_early_stopping_keeps_the_best_epochs_weights_and_metrics() -> None:
    data = load_dataset("iris")
    # a high lr on a tiny dataset: the dev loss bounces, so the best epoch is not the last
    config = TrainConfig(optimizer="sgd", lr=0.5, epochs=40, hidden=(64,), patience=5, batch_size=8)
    result = train(config, data)
    assert result.status == "completed"
    best = result.best_epoch
    assert best is not None and result.final is not None
    dev_losses = result.dev_loss[1:]
    assert best == 1 + dev_losses.index(min(dev_losses))
    assert result.final.epoch == best and result.final.dev_loss == min(dev_losses)
    assert result.final.dev_loss < result.dev_loss[result.epochs_run]  # not the last epoch's
    loss, accuracy = evaluate(result.model, data.dev_x, data.dev_y, data.task)  # type: ignore[arg-type]
    assert loss == pytest.approx(result.final.dev_loss)
    assert accuracy == result.final.dev_accuracy


def test_without_patience_the_last_epoch_counts() -> None:
    result = train(TrainConfig(lr=1e-7, epochs=4), load_dataset("iris"))
    assert (result.epochs_run, result.best_epoch, result.stopped_early_at) == (4, None, None)
    assert result.final is not None and result.final.epoch == 4


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("l1", -1.0),
        ("l1", float("inf")),
        ("lr_schedule", "linear"),
        ("lr_step_epochs", 0),
        ("lr_gamma", 0.0),
        ("lr_gamma", 1.5),
        ("lr_warmup_epochs", -1),
        ("clip_norm", 0.0),
        ("clip_norm", float("nan")),
        ("patience", 0),
        ("min_delta", -0.1),
    ],
)
def test_bad_option_raises_value_error_naming_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})  # type: ignore[arg-type]
