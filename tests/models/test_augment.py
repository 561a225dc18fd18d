"""Augmentation moves training images (shifts by whole pixels, small rotations), never dev
or test data, and is refused for datasets that are not images."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from models import CNN, Augment, TrainConfig, evaluate, load_dataset, train


def _shifted(image: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``image`` (H, W) moved right by dx and down by dy, zeros coming in."""
    out = torch.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_shifts_move_each_image_by_whole_pixels() -> None:
    data = load_dataset("digits")
    augment = Augment(data, shift=2, rotation=0.0)
    x = data.train_x[:64]  # (64, 64) standardised
    moved = augment(x, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape
    blank = augment.blank  # each pixel's standardised value when blank
    offsets, moved_offsets = (x - blank).reshape(-1, 8, 8), (moved - blank).reshape(-1, 8, 8)
    shifts = list(itertools.product(range(-2, 3), repeat=2))
    seen = set()
    for before, after in zip(offsets, moved_offsets, strict=True):
        matches = [s for s in shifts if torch.allclose(_shifted(before, *s), after, atol=1e-5)]
        assert matches, "every image is one of its shifts"
        seen.add(matches[0])
    assert len(seen) > 5  # drawn per image, not one shift for the batch
    assert (seen - {(0, 0)}) and not torch.equal(moved, x)


def test_rotation_changes_images_and_is_seeded() -> None:
    data = load_dataset("digits")
    augment = Augment(data, shift=0, rotation=15.0)
    x = data.train_x[:32]
    a = augment(x, torch.Generator().manual_seed(3))
    b = augment(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert (a - x).abs().amax(dim=1).gt(1e-3).float().mean() > 0.9
    assert a.abs().max() < 2 * x.abs().max()  # moves offsets from blank: no blow-up


def test_training_batches_are_augmented_and_dev_data_never() -> None:
    torch.set_num_threads(1)
    data = load_dataset("digits")
    seen: list[tuple[bool, torch.Tensor]] = []

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        if isinstance(module, CNN):
            seen.append((module.training, inputs[0].detach().clone()))

    config = TrainConfig(model="cnn", epochs=2, augment_shift=1, augment_rotation=10.0)
    handle = nn.modules.module.register_module_forward_pre_hook(record)
    try:
        result = train(config, data)
    finally:
        handle.remove()
    rows = {tuple(r.tolist()) for r in torch.cat([data.train_x, data.dev_x])}
    in_training = [x for training, x in seen if training]
    in_eval = [x for training, x in seen if not training]
    assert in_training and in_eval
    # every batch the network trained on was moved (some rows may land back on themselves)
    for batch in in_training:
        assert sum(tuple(r.tolist()) not in rows for r in batch) > batch.shape[0] // 2
    # every evaluation (initial loss, dev metrics, final scores) saw the data as it is
    for x in in_eval:
        assert torch.equal(x, data.dev_x) or torch.equal(x, data.train_x)
    assert any(torch.equal(x, data.dev_x) for x in in_eval)
    assert result.final is not None and result.model is not None
    dev_loss, dev_accuracy = evaluate(result.model, data.dev_x, data.dev_y, data.task)
    assert (result.final.dev_loss, result.final.dev_accuracy) == (dev_loss, dev_accuracy)
    plain = train(TrainConfig(model="cnn", epochs=2), data)
    assert plain.train_loss[0] == result.train_loss[0]  # same start (same seed and init)
    assert plain.train_loss[1:] != result.train_loss[1:]  # different batches


def test_augmentation_refused_for_tables_and_out_of_range() -> None:
    with pytest.raises(ValueError, match="not an image dataset"):
        train(TrainConfig(epochs=1, augment_shift=1), load_dataset("iris"))
    with pytest.raises(ValueError, match="augment_shift"):
        TrainConfig(augment_shift=9)
    with pytest.raises(ValueError, match="augment_rotation"):
        TrainConfig(augment_rotation=-1.0)
