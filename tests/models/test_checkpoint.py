"""A run stopped at an epoch boundary and resumed from its checkpoint ends exactly as the
run never stopped: the same metrics every epoch, the same lr, the same early stopping and
the same weights, bitwise on the CPU (every state that carries randomness or memory is
restored: dropout and shuffle generators, batch-norm statistics, the optimizer's moments,
the lr schedule, early stopping's best epoch)."""

from __future__ import annotations

import pytest
import torch

from models import (
    ConvBlock,
    Dataset,
    TrainConfig,
    TrainResult,
    load_dataset,
    read_checkpoint,
    train,
)

MLP = TrainConfig(
    hidden=(48, 32),
    keep_prob=0.8,
    batch_norm=True,
    optimizer="adam",
    lr=0.01,
    lr_schedule="cosine",
    lr_warmup_epochs=2,
    epochs=6,
    patience=3,
    seed=5,
)
# Early stopping ends this one (a large, decaying lr on a momentum optimizer) before its
# epoch budget; residual blocks, L1, clipping and weight decay carry no state of their own.
EARLY = TrainConfig(
    hidden=(32, 32, 32),
    residual=True,
    optimizer="momentum",
    lr=0.3,
    lr_schedule="step",
    lr_step_epochs=2,
    l1=1e-4,
    clip_norm=1.0,
    weight_decay=1e-3,
    epochs=30,
    patience=2,
    min_delta=0.01,
    seed=3,
)
CNN = TrainConfig(
    model="cnn",
    conv=(ConvBlock(4),),
    hidden=(16,),
    epochs=2,
    augment_shift=1,
    augment_rotation=10.0,
    seed=1,
)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def _same(a: TrainResult, b: TrainResult) -> None:
    """Bitwise: a float that differs in its last bit fails."""
    assert a.history == b.history
    assert (a.status, a.final, a.lr, a.train_scores) == (b.status, b.final, b.lr, b.train_scores)
    assert (a.best_epoch, a.stopped_early_at, a.epochs_run) == (
        b.best_epoch,
        b.stopped_early_at,
        b.epochs_run,
    )
    assert a.model is not None and b.model is not None
    for (name, x), y in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(x, y), name


def _stopped_after(config: TrainConfig, data: Dataset, epoch: int) -> bytes:
    stopped = train(config, data, lambda m: m.epoch >= epoch)
    assert stopped.status == "stopped" and stopped.checkpoint is not None
    return stopped.checkpoint()


@pytest.mark.parametrize(("config", "stop_at"), [(MLP, 0), (MLP, 3), (MLP, 6), (CNN, 1)])
def test_a_resumed_run_ends_as_one_never_stopped(
    digits: Dataset, config: TrainConfig, stop_at: int
) -> None:
    straight = train(config, digits)
    checkpoint = read_checkpoint(_stopped_after(config, digits, stop_at))
    assert checkpoint.epoch == stop_at
    seen: list[int] = []
    resumed = train(config, digits, lambda m: bool(seen.append(m.epoch)), resume=checkpoint)
    _same(resumed, straight)
    assert resumed.resumed_from == stop_at
    assert seen == list(range(config.epochs + 1))  # the checkpoint's epochs came again


def test_resuming_around_early_stopping(digits: Dataset) -> None:
    straight = train(EARLY, digits)
    ended = straight.stopped_early_at
    assert ended is not None and ended < EARLY.epochs, "early stopping must end this run"
    for stop_at in (1, ended - 1, ended):  # at `ended` the stop and early stopping coincide
        resumed = train(
            EARLY, digits, resume=read_checkpoint(_stopped_after(EARLY, digits, stop_at))
        )
        _same(resumed, straight)


def test_a_run_stopped_twice_resumes_from_its_second_checkpoint(digits: Dataset) -> None:
    straight = train(MLP, digits)
    first = read_checkpoint(_stopped_after(MLP, digits, 2))
    again = train(MLP, digits, lambda m: m.epoch >= 5, resume=first)
    assert again.status == "stopped" and again.checkpoint is not None
    _same(train(MLP, digits, resume=read_checkpoint(again.checkpoint())), straight)


def test_a_stop_asked_while_the_checkpoint_replays_stops_at_its_epoch(digits: Dataset) -> None:
    data = _stopped_after(MLP, digits, 4)
    again = train(MLP, digits, lambda m: m.epoch == 1, resume=read_checkpoint(data))
    assert (again.status, again.epochs_run, len(again.history)) == ("stopped", 4, 5)
    assert again.checkpoint is not None
    assert read_checkpoint(again.checkpoint()).history == read_checkpoint(data).history


def test_a_checkpoint_resumes_only_its_own_configuration(digits: Dataset) -> None:
    checkpoint = read_checkpoint(_stopped_after(MLP, digits, 1))
    other = TrainConfig(**{**MLP.__dict__, "lr": 0.02})
    with pytest.raises(ValueError, match="another configuration"):
        train(other, digits, resume=checkpoint)


@pytest.mark.parametrize("data", [b"", b"not a checkpoint", b"PK\x03\x04garbage"])
def test_garbage_is_not_a_checkpoint(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a checkpoint"):
        read_checkpoint(data)
