"""The CNN and augmentation part of the spec (pure pydantic and arithmetic, no torch).

A CNN's blocks are ``training.conv``; search knobs override them: ``conv_channels`` (a
``layers`` parameter) picks the number of blocks and each one's channels (block i keeps
the other settings of ``training.conv[i]``, or of the last listed block beyond the list),
and ``kernel_size``, ``stride``, ``pool`` and ``conv_batch_norm`` set every block at once.
Before anything trains, every configuration the space can make is checked to leave each
feature map at least 1x1 (``feature_map_problem``). Import these names from ``search.spec``.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from search._params import CategoricalParam, IntParam, LayersParam, Strict, knob_field
from search.builtin_data import IMAGE_SHAPES
from search.knobs import (
    AUGMENT_KNOBS,
    BUILT_IN,
    CNN_KNOBS,
    CONV_HEADS,
    KNOB,
    MAX_CHANNELS,
    POOLS,
)

MODELS = BUILT_IN
SYNTHETIC = "synthetic"  # the model (and its stand-in dataset) that trains on no data
MAX_PADDING = 15
# Knobs that set a field of every block, and the block field they set.
BLOCK_KNOBS = {
    "kernel_size": "kernel_size",
    "stride": "stride",
    "pool": "pool",
    "conv_batch_norm": "batch_norm",
}

if TYPE_CHECKING:
    PoolName = str
else:
    PoolName = Literal[POOLS]  # the table's choices, as the schema's enum


class ConvBlockSpec(Strict):
    """One convolution block: Conv2d -> batch norm (if on) -> activation -> 2x2 pooling
    (stride 2) or none. ``padding`` "same" is ``kernel_size // 2``."""

    channels: int = Field(ge=1, le=MAX_CHANNELS)
    kernel_size: int = knob_field(KNOB["kernel_size"])[1]  # the block knobs' table rows
    stride: int = knob_field(KNOB["stride"])[1]
    padding: int | Literal["same"] = "same"
    batch_norm: bool = knob_field(KNOB["conv_batch_norm"])[1]
    pool: PoolName = knob_field(KNOB["pool"])[1]

    @field_validator("padding")
    @classmethod
    def _padding(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 0 <= v <= MAX_PADDING:
            raise ValueError(f"padding must be 'same' or between 0 and {MAX_PADDING}")
        return v


def default_conv() -> list[ConvBlockSpec]:
    return [ConvBlockSpec(channels=16), ConvBlockSpec(channels=32)]


def conv_blocks(conv: list[ConvBlockSpec], knobs: dict[str, Any]) -> list[dict[str, Any]]:
    """A trial's blocks (as ConvBlock keyword arguments) from the fixed ``training.conv``
    and the knobs the search chose."""
    base = [b.model_dump() for b in conv]
    channels = knobs.get("conv_channels")
    if channels is not None:
        base = [base[min(i, len(base) - 1)] | {"channels": int(c)} for i, c in enumerate(channels)]
    overrides = {field: knobs[knob] for knob, field in BLOCK_KNOBS.items() if knob in knobs}
    return [b | overrides for b in base]


def block_padding(block: dict[str, Any]) -> int:
    return block["kernel_size"] // 2 if block["padding"] == "same" else int(block["padding"])


def _shrink(size: int, block: dict[str, Any]) -> int:
    size = (size + 2 * block_padding(block) - block["kernel_size"]) // block["stride"] + 1
    return size // 2 if block["pool"] != "none" else size


def map_sizes(image_shape: tuple[int, int, int], blocks: list[dict[str, Any]]) -> list[str]:
    """``HxW`` after each block, down to the first one below 1x1."""
    _, h, w = image_shape
    sizes = []
    for block in blocks:
        h, w = _shrink(h, block), _shrink(w, block)
        sizes.append(f"{max(h, 0)}x{max(w, 0)}")
        if h < 1 or w < 1:
            break
    return sizes


def block_knob_values(p: Any) -> list[Any]:
    """Every value a searched block knob can take (int ranges are short: <= 15 values)."""
    if isinstance(p, CategoricalParam):
        return list(dict.fromkeys(p.choices))
    if isinstance(p, IntParam):
        if p.values is not None:
            return list(dict.fromkeys(p.values))
        assert p.low is not None and p.high is not None
        return list(range(int(p.low), int(p.high) + 1))
    return [None]


def deepest_channels(space: dict[str, Any], conv: list[ConvBlockSpec]) -> list[list[int]]:
    """The channel lists with the most blocks the space can choose (one per distinct depth
    among explicit values; the widest stack of the deepest depth for a range)."""
    p = space.get("conv_channels")
    if not isinstance(p, LayersParam):
        return [[b.channels for b in conv]]
    if p.values is not None:
        return [list(v) for v in p.values]
    assert p.depth is not None and p.units is not None
    return [[p.units[1]] * p.depth[1]]


def feature_map_problem(
    image_shape: tuple[int, int, int], conv: list[ConvBlockSpec], space: dict[str, Any]
) -> str | None:
    """The first way a configuration of the space makes a feature map smaller than 1x1,
    as ``training.conv[i]: ...``; None when none can. Checks every value of every searched
    knob that changes a map's size (a deeper stack only adds blocks, so the deepest)."""
    searched = [k for k in ("kernel_size", "stride", "pool") if k in space]
    for combo in itertools.product(*(block_knob_values(space[k]) for k in searched)):
        knobs: dict[str, Any] = dict(zip(searched, combo, strict=True))
        depths = sorted({len(c) for c in deepest_channels(space, conv)})  # channels: no matter
        for depth in depths:
            blocks = conv_blocks(conv, knobs | {"conv_channels": [1] * depth})
            sizes = map_sizes(image_shape, blocks)
            if sizes[-1].startswith("0x") or sizes[-1].endswith("x0"):
                return _vanishing_map(image_shape, sizes, knobs, "conv_channels" in space)
    return None


def _vanishing_map(
    image_shape: tuple[int, int, int], sizes: list[str], knobs: dict[str, Any], deep: bool
) -> str:
    chosen = ", ".join(f"{k} {v}" for k, v in knobs.items())
    where = f" with {chosen} from search.space" if chosen else ""
    depth = f" at {len(sizes)} blocks (search.space.conv_channels)" if deep else ""
    _, h, w = image_shape
    return (
        f"training.conv[{len(sizes) - 1}]: feature map would be {sizes[-1]}{where}{depth} "
        f"({h}x{w} -> {' -> '.join(sizes)}); use fewer blocks, smaller kernels or strides, "
        "more padding or less pooling"
    )


def image_problem(
    *,
    model: str,
    training: Any,
    space: dict[str, Any],
    image_shape: tuple[int, int, int] | None,
    dataset: str,
) -> tuple[str, str] | None:
    """(field, message) when the spec asks for a CNN or augmentation on a dataset that is
    not an image, or for a CNN whose feature maps can vanish; None when it fits."""
    table = f"{dataset} is a table of features, not images (image datasets: " + (
        f"{', '.join(sorted(IMAGE_SHAPES))})"
    )
    if model != "cnn":
        for knob in CNN_KNOBS:
            if knob in space:
                return f"search.space.{knob}", f"{knob} is a CNN setting; set model: cnn"
    elif image_shape is None:
        return "model", f"cnn needs an image dataset; {table}"
    for knob in AUGMENT_KNOBS:
        searched = knob in space
        if image_shape is None and (searched or getattr(training, knob) != 0):
            where = f"search.space.{knob}" if searched else f"training.{knob}"
            return where, f"augmentation needs an image dataset; {table}"
    if model == "cnn" and image_shape is not None:
        problem = feature_map_problem(image_shape, training.conv, space)
        if problem is not None:
            field, _, message = problem.partition(": ")
            return field, message
    return None


__all__ = [
    "AUGMENT_KNOBS",
    "BLOCK_KNOBS",
    "block_knob_values",
    "block_padding",
    "CNN_KNOBS",
    "CONV_HEADS",
    "IMAGE_SHAPES",
    "MODELS",
    "SYNTHETIC",
    "POOLS",
    "ConvBlockSpec",
    "conv_blocks",
    "deepest_channels",
    "default_conv",
    "feature_map_problem",
    "image_problem",
    "map_sizes",
]
