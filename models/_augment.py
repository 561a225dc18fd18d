"""Data augmentation for image datasets: random shifts and small rotations of each training
batch, on the batch's device, drawn from the trial's generator.

Inputs are standardised per pixel with training statistics. Mapping a batch back to raw
pixels, moving it and standardising again would blow up: a stroke moved onto a corner pixel
that is almost always blank (training std ~0.05) would read ~90. So what moves is each
pixel's offset from blank in its own standardised units (bounded like the inputs), and
what comes in from outside the image is blank (raw 0) at its destination. Only training
batches pass through here; dev and test data never do.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models._datasets import Dataset
from search.knobs import MAX_ROTATION, MAX_SHIFT


def check_augment(shift: int, rotation: float) -> None:
    """Raise ValueError for an out-of-range shift (pixels) or rotation (degrees)."""
    if isinstance(shift, bool) or not isinstance(shift, int) or not 0 <= shift <= MAX_SHIFT:
        raise ValueError(f"augment_shift must be an integer in [0, {MAX_SHIFT}], got {shift!r}")
    if not (math.isfinite(rotation) and 0.0 <= rotation <= MAX_ROTATION):
        raise ValueError(f"augment_rotation must be in [0, {MAX_ROTATION:g}], got {rotation!r}")


class Augment:
    """Shift each image by up to ``shift`` whole pixels in x and in y and rotate it by up
    to ``rotation`` degrees either way, one draw per image; call on a flat batch
    (B, C*H*W) of standardised rows with the trial's generator."""

    def __init__(self, data: Dataset, shift: int, rotation: float) -> None:
        check_augment(shift, rotation)
        if data.image_shape is None:
            raise ValueError(f"dataset {data.name!r} is not an image dataset: nothing to augment")
        self.shape = data.image_shape  # (C, H, W)
        self.shift, self.rotation = shift, rotation
        self.blank = _standardised_blank(data)  # (C*H*W,)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        c, h, w = self.shape
        n = x.shape[0]
        offset = (x - self.blank).reshape(n, c, h, w)  # (B, C, H, W), 0 where blank
        shifts = torch.randint(
            -self.shift, self.shift + 1, (n, 2), generator=generator, device=x.device
        )  # (B, 2) pixels in (x, y)
        turns = torch.rand(n, generator=generator, device=x.device)  # (B,)
        angle = (2 * turns - 1) * math.radians(self.rotation)  # (B,) radians
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)  # (B, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
        theta[:, 1, 0], theta[:, 1, 1] = sin, cos
        # Output pixel p samples input pixel p - shift: a translation of 2 * shift / size
        # in grid_sample's [-1, 1] coordinates lands exactly on pixel centres.
        theta[:, 0, 2] = -2.0 * shifts[:, 0].to(x.dtype) / w
        theta[:, 1, 2] = -2.0 * shifts[:, 1].to(x.dtype) / h
        grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)  # (B, H, W, 2)
        moved = F.grid_sample(offset, grid, padding_mode="zeros", align_corners=False)
        return moved.reshape(n, -1) + self.blank  # (B, C*H*W) standardised


def _standardised_blank(data: Dataset) -> torch.Tensor:
    """Each pixel's standardised value when blank (raw 0): -mean / std, on the data's device."""
    prep = data.preparation
    if prep is None or len(prep.numeric) != data.n_features:
        raise ValueError(f"dataset {data.name!r} carries no per-pixel statistics")
    blank = [-prep.numeric[col][0] / prep.numeric[col][1] for col in prep.columns]
    return torch.tensor(blank, device=data.train_x.device, dtype=data.train_x.dtype)


__all__ = ["MAX_ROTATION", "MAX_SHIFT", "Augment", "check_augment"]
