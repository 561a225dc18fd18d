"""A convolution block's settings and the feature-map sizes they give (no torch: a spec's
configuration is built and checked without it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from search.knobs import MAX_KERNEL, MAX_STRIDE, POOLS

MAX_PADDING = 15


@dataclass(frozen=True)
class ConvBlock:
    """Conv2d(kernel_size, stride, padding) -> batch norm (if on) -> activation -> pooling.

    ``padding`` "same" is ``kernel_size // 2`` (keeps the map's size for odd kernels at
    stride 1). With batch norm the convolution has no bias (the norm's shift replaces it).
    """

    channels: int
    kernel_size: int = 3
    stride: int = 1
    padding: int | str = "same"
    batch_norm: bool = False
    pool: str = "max"

    def __post_init__(self) -> None:
        if not isinstance(self.channels, int) or self.channels < 1:
            raise ValueError(f"channels must be >= 1, got {self.channels!r}")
        if not 1 <= self.kernel_size <= MAX_KERNEL:
            raise ValueError(f"kernel_size must be in [1, {MAX_KERNEL}], got {self.kernel_size!r}")
        if not 1 <= self.stride <= MAX_STRIDE:
            raise ValueError(f"stride must be in [1, {MAX_STRIDE}], got {self.stride!r}")
        if self.padding != "same" and not (
            isinstance(self.padding, int) and 0 <= self.padding <= MAX_PADDING
        ):
            raise ValueError(
                f"padding must be 'same' or in [0, {MAX_PADDING}], got {self.padding!r}"
            )
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")

    @property
    def pad(self) -> int:
        return self.kernel_size // 2 if self.padding == "same" else int(self.padding)


def feature_map_sizes(
    height: int, width: int, blocks: Sequence[ConvBlock]
) -> list[tuple[int, int]]:
    """(H, W) after each block: (i + 2p - k) // s + 1, then // 2 when pooled."""
    sizes = []
    for b in blocks:
        height = (height + 2 * b.pad - b.kernel_size) // b.stride + 1
        width = (width + 2 * b.pad - b.kernel_size) // b.stride + 1
        if b.pool != "none":
            height, width = height // 2, width // 2
        sizes.append((height, width))
    return sizes


__all__ = ["MAX_PADDING", "ConvBlock", "feature_map_sizes"]
