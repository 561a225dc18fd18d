from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from models import (
    MLP,
    OPTIMIZERS,
    EpochMetrics,
    TrainConfig,
    evaluate,
    load_dataset,
    resolve_device,
    train,
)
from models._streams import trial_streams


def test_sane_config_learns_digits() -> None:
    config = TrainConfig(hidden=(64,), optimizer="adam", lr=1e-3, epochs=20, batch_size=64)
    result = train(config, load_dataset("digits"))
    assert result.status == "completed" and result.reason is None
    assert result.epochs_run == 20
    assert len(result.train_loss) == len(result.dev_loss) == len(result.dev_accuracy) == 21
    assert result.final is not None and result.final.epoch == 20
    assert result.final.dev_accuracy is not None and result.final.dev_accuracy >= 0.9
    assert result.train_loss[-1] < result.initial_loss / 5
    assert result.duration_s > 0


def test_initial_loss_is_measured_before_any_update() -> None:
    data = load_dataset("digits")
    result = train(TrainConfig(epochs=1), data)
    # He init with 10 classes starts near chance: cross-entropy around ln(10)
    assert result.train_loss[0] == result.initial_loss
    assert 1.0 < result.initial_loss < 10.0
    dev_accuracy = result.dev_accuracy[0]
    assert dev_accuracy is not None and dev_accuracy < 0.5
    init = trial_streams(0).init  # train() draws the initial weights from this stream
    model = MLP(data.n_features, (64,), data.n_classes, generator=init)
    loss, _ = evaluate(model, data.train_x, data.train_y, data.task)
    assert loss == pytest.approx(result.initial_loss)


def test_huge_learning_rate_diverges_in_first_epoch() -> None:
    seen: list[int] = []
    config = TrainConfig(optimizer="sgd", lr=50.0, epochs=5)
    result = train(config, load_dataset("digits"), lambda m: seen.append(m.epoch))
    assert result.status == "diverged" and result.reason == "diverged"
    assert result.epochs_run == 0
    assert seen == [0]
    assert len(result.train_loss) == 1
    assert result.final is not None and result.final.epoch == 0


def test_divergence_factor_is_the_threshold() -> None:
    # sgd lr=3 sends the digits loss far above 3x its initial value, but finite
    data = load_dataset("digits")
    unguarded = train(
        TrainConfig(optimizer="sgd", lr=3.0, epochs=2, divergence_factor=math.inf), data
    )
    assert unguarded.status == "completed"
    assert max(unguarded.train_loss[1:]) > 3 * unguarded.initial_loss
    guarded = train(TrainConfig(optimizer="sgd", lr=3.0, epochs=2), data)
    assert guarded.status == "diverged" and guarded.epochs_run == 0


def test_same_seed_gives_identical_curves() -> None:
    config = TrainConfig(hidden=(32, 16), keep_prob=0.8, epochs=4, seed=7)
    data = load_dataset("wine")
    first, second = train(config, data), train(config, data)
    assert first.train_loss == second.train_loss
    assert first.dev_loss == second.dev_loss
    assert first.dev_accuracy == second.dev_accuracy
    other = train(TrainConfig(hidden=(32, 16), keep_prob=0.8, epochs=4, seed=8), data)
    assert other.train_loss != first.train_loss


def test_on_epoch_sees_epoch_zero_then_each_epoch() -> None:
    seen: list[EpochMetrics] = []
    result = train(TrainConfig(epochs=5), load_dataset("iris"), seen.append)
    assert [m.epoch for m in seen] == [0, 1, 2, 3, 4, 5]
    assert seen[0].train_loss == result.initial_loss
    assert [m.train_loss for m in seen] == result.train_loss
    assert [m.dev_loss for m in seen] == result.dev_loss
    assert result.final == seen[-1]


def test_on_epoch_returning_true_stops() -> None:
    result = train(TrainConfig(epochs=10), load_dataset("iris"), lambda m: m.epoch == 2)
    assert result.status == "stopped" and result.reason == "stopped"
    assert result.epochs_run == 2
    assert len(result.train_loss) == 3
    assert result.final is not None and result.final.epoch == 2


def test_stop_at_epoch_zero() -> None:
    result = train(TrainConfig(epochs=10), load_dataset("iris"), lambda m: True)
    assert result.status == "stopped" and result.epochs_run == 0
    assert result.final is not None and result.final.epoch == 0
    assert result.train_loss == [result.initial_loss]


def test_stop_on_last_epoch_is_still_stopped() -> None:
    result = train(TrainConfig(epochs=3), load_dataset("iris"), lambda m: m.epoch == 3)
    assert result.status == "stopped" and result.epochs_run == 3


def test_regression_on_diabetes() -> None:
    result = train(TrainConfig(epochs=20, lr=3e-3), load_dataset("diabetes"))
    assert result.status == "completed"
    assert result.dev_accuracy == [None] * 21
    assert result.final is not None and result.final.dev_accuracy is None
    assert all(math.isfinite(v) for v in result.train_loss + result.dev_loss)
    assert result.train_loss[-1] < result.train_loss[0]
    # targets are standardised: predicting the mean scores ~1, a fitted model clearly less
    assert result.dev_loss[-1] < 0.8


@pytest.mark.parametrize(
    ("optimizer", "lr"),
    [("sgd", 0.1), ("momentum", 0.02), ("adam", 1e-2), ("rmsprop", 1e-3), ("adamw", 1e-2)],
)
def test_each_optimizer_trains(optimizer: str, lr: float) -> None:
    assert optimizer in OPTIMIZERS
    config = TrainConfig(optimizer=optimizer, lr=lr, epochs=5, weight_decay=1e-4)
    result = train(config, load_dataset("breast_cancer"))
    assert result.status == "completed"
    assert result.train_loss[-1] < result.initial_loss
    assert result.final is not None and result.final.dev_accuracy is not None
    assert result.final.dev_accuracy > 0.85


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "leaky_relu"])
def test_other_activations_and_inits_train(activation: str) -> None:
    config = TrainConfig(activation=activation, weight_init="xavier", epochs=3, lr=1e-2)
    assert train(config, load_dataset("moons")).status == "completed"


def test_evaluate_restores_mode_and_counts_accuracy() -> None:
    data = load_dataset("iris")
    model = MLP(data.n_features, (8,), data.n_classes, keep_prob=0.5)
    model.train()
    loss, accuracy = evaluate(model, data.dev_x, data.dev_y, data.task)
    assert model.training
    with torch.no_grad():
        model.eval()
        logits = model(data.dev_x)  # (N, C)
    expected = float((logits.argmax(dim=1) == data.dev_y).double().mean())
    assert accuracy == pytest.approx(expected)
    expected_loss = float(torch.nn.functional.cross_entropy(logits, data.dev_y))
    assert loss == pytest.approx(expected_loss, rel=1e-5)


def test_hidden_given_as_list_is_kept_as_tuple() -> None:
    config = TrainConfig(hidden=[16, 8])  # type: ignore[arg-type]
    assert config.hidden == (16, 8)
    hash(config)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hidden", (0,)),
        ("activation", "gelu"),
        ("keep_prob", 0.0),
        ("keep_prob", 1.1),
        ("weight_init", "orthogonal"),
        ("optimizer", "adagrad"),
        ("lr", 0.0),
        ("lr", float("nan")),
        ("momentum", 1.5),
        ("batch_size", 0),
        ("weight_decay", -1e-4),
        ("epochs", 0),
        ("divergence_factor", 0.0),
        ("seed", -1),
        ("device", "tpu"),
    ],
)
def test_bad_config_raises_value_error_naming_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})  # type: ignore[arg-type]


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="tpu"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:0"):
            with pytest.raises(ValueError, match="CUDA"):
                resolve_device(name)


def test_a_trial_draws_nothing_from_the_global_generator() -> None:
    """Initial weights, shuffle order and dropout masks come from the trial's own streams:
    whatever else draws from torch's global generator meanwhile (here a callback between
    epochs; in a worker, other threads), the same config trains the same way."""
    data = load_dataset("iris")
    config = TrainConfig(hidden=(16,), keep_prob=0.7, epochs=3, seed=5)
    quiet = train(config, data)
    torch.manual_seed(2)
    noisy = train(config, data, lambda m: bool(torch.rand(100).sum() < 0))
    assert noisy.train_loss == quiet.train_loss and noisy.dev_loss == quiet.dev_loss
    assert train(replace(config, seed=6), data).train_loss != quiet.train_loss
