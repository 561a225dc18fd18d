"""The largest network (and the most epochs) a spec can ask for, checked before anything
trains.

A configuration that does not fit in memory kills its worker; a retried slot would then
take down every worker in turn. ``check_size`` refuses a spec whose largest configuration
has more than ``max_params`` parameters (``HPS_MAX_PARAMS``), naming the field to change.
Pure Python: the API calls it without importing torch.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from search._conv import (
    IMAGE_SHAPES,
    SYNTHETIC,
    block_knob_values,
    block_padding,
    conv_blocks,
    map_sizes,
)
from search._params import LayersParam, param_values
from search.spec import ExperimentSpec

# (input features, outputs) of each built-in dataset; tests check them against models/.
DATASET_SHAPES: dict[str, tuple[int, int]] = {
    "digits": (64, 10),
    "iris": (4, 3),
    "wine": (13, 3),
    "breast_cancer": (30, 2),
    "moons": (2, 2),
    "diabetes": (10, 1),
}


class SpecTooLarge(ValueError):
    """The spec asks for more than this service allows (parameters, trials or epochs)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _too_many_params(field: str, n_params: int, max_params: int) -> SpecTooLarge:
    return SpecTooLarge(
        field,
        f"the largest network has {n_params:,} parameters, more than the "
        f"{max_params:,} this service allows (HPS_MAX_PARAMS)",
    )


def mlp_params(
    n_in: int,
    hidden: list[int],
    n_out: int,
    *,
    batch_norm: bool = False,
    residual: bool = False,
    every_block_projects: bool = False,
) -> int:
    """Weights and biases of an MLP with these layer sizes, with its batch norms' scales,
    shifts and running statistics (4 per unit, less the Linear's bias they replace) and
    its residual blocks' projections
    (``models._mlp.MLP``: layer 1 plain, then pairs; a pair whose output width differs
    from its input's projects the shortcut, without bias). ``every_block_projects``
    counts a projection in every block: a bound for widths searched over a range."""
    widths = [n_in, *hidden, n_out]
    n = sum(a * b + b for a, b in zip(widths, widths[1:], strict=False))
    if batch_norm:
        n += 3 * sum(hidden)
    if residual:
        for i in range(1, len(hidden) - 1, 2):  # block: hidden[i], hidden[i + 1]
            if every_block_projects or hidden[i - 1] != hidden[i + 1]:
                n += hidden[i - 1] * hidden[i + 1]
    return n


def _may_be_on(spec: ExperimentSpec, knob: str) -> bool:
    """Whether some trial of the spec can turn the boolean ``knob`` on."""
    p = spec.search.space.get(knob)
    return bool(getattr(spec.train, knob)) if p is None else True in param_values(p)


def _conv_layers(
    image_shape: tuple[int, int, int], blocks: list[dict[str, Any]], head: str
) -> tuple[list[tuple[int, dict[str, Any], int]], int]:
    """Each block's (channels in, block, positions of its output map before pooling), and
    the features the dense head takes."""
    layers, channels = [], image_shape[0]
    h, w = image_shape[1], image_shape[2]
    for b in blocks:
        k, pad = b["kernel_size"], block_padding(b)
        h, w = (h + 2 * pad - k) // b["stride"] + 1, (w + 2 * pad - k) // b["stride"] + 1
        layers.append((channels, b, h * w))
        channels = b["channels"]
        if b["pool"] != "none":
            h, w = h // 2, w // 2
    return layers, channels if head == "avg" else channels * h * w


def cnn_params(
    image_shape: tuple[int, int, int],
    blocks: list[dict[str, Any]],
    head: str,
    hidden: list[int],
    n_out: int,
) -> int:
    """Weights, biases and batch-norm scales and shifts of a CNN with these blocks (as
    ``search._conv.conv_blocks`` makes them), then its dense head."""
    layers, n_flat = _conv_layers(image_shape, blocks, head)
    n = sum(
        c_in * b["channels"] * b["kernel_size"] ** 2 + b["channels"] * (2 if b["batch_norm"] else 1)
        for c_in, b, _ in layers
    )
    return n + mlp_params(n_flat, hidden, n_out)


def cnn_multiply_adds(
    image_shape: tuple[int, int, int],
    blocks: list[dict[str, Any]],
    head: str,
    hidden: list[int],
    n_out: int,
) -> int:
    """Multiply-adds of one example's forward pass through a CNN with these blocks (the
    convolutions at each output position, then the dense head): the work a stack of its
    trials shares out (``models.auto_stack_size``)."""
    layers, n_flat = _conv_layers(image_shape, blocks, head)
    n = sum(c_in * b["channels"] * b["kernel_size"] ** 2 * at for c_in, b, at in layers)
    return n + mlp_params(n_flat, hidden, n_out)


def _layer_candidates(spec: ExperimentSpec, knob: str, fixed: list[int]) -> list[list[int]]:
    """The largest layer lists a ``layers`` knob can choose: each explicit value, or the
    widest stack of each depth of a range."""
    p = spec.search.space.get(knob)
    if not isinstance(p, LayersParam):
        return [fixed]
    if p.values is not None:
        return [list(v) for v in p.values]
    assert p.depth is not None and p.units is not None
    return [[p.units[1]] * d for d in range(p.depth[0], p.depth[1] + 1)]


def _largest_cnn(spec: ExperimentSpec, n_out: int, measure: Callable[..., int] = cnn_params) -> int:
    """Every kernel size, stride, pooling, head and depth the space can choose, at the most
    channels and units (a shallower stack can flatten a larger map, so all depths), by
    ``measure`` (parameters, or ``cnn_multiply_adds``)."""
    image_shape = IMAGE_SHAPES[spec.data.name or ""]
    space, training = spec.search.space, spec.train
    searched = [k for k in ("kernel_size", "stride", "pool") if k in space]
    knobs: dict[str, list[Any]] = {k: block_knob_values(space[k]) for k in searched}
    if "conv_batch_norm" in space:  # batch norm adds a scale and a shift per channel
        knobs["conv_batch_norm"] = [True in param_values(space["conv_batch_norm"])]
    heads = param_values(space["conv_head"]) if "conv_head" in space else [training.conv_head]
    channels = _layer_candidates(spec, "conv_channels", [b.channels for b in training.conv])
    hidden = _layer_candidates(spec, "hidden", list(training.hidden))
    best = 0
    for combo in itertools.product(*knobs.values(), channels, heads, hidden):
        chosen = dict(zip(knobs, combo, strict=False)) | {"conv_channels": combo[-3]}
        blocks = conv_blocks(training.conv, chosen)
        if map_sizes(image_shape, blocks)[-1].startswith("0"):
            continue  # refused by the spec already
        best = max(best, measure(image_shape, blocks, combo[-2], combo[-1], n_out))
    return best


def largest_network(spec: ExperimentSpec, shape: tuple[int, int] | None = None) -> tuple[str, int]:
    """The parameter count of the largest network the spec can choose, and the field
    its layers come from. ``shape``: (inputs, outputs) of an uploaded dataset."""
    if spec.model == SYNTHETIC or spec.external:
        return "model", 0  # an analytic function, or the user's own code: no network of ours
    n_in, n_out = shape or DATASET_SHAPES[spec.data.name or ""]
    if spec.model == "cnn":
        field = "conv_channels" if "conv_channels" in spec.search.space else "conv"
        where = "search.space" if field == "conv_channels" else "training"
        return f"{where}.{field}", _largest_cnn(spec, n_out)
    options = {
        "batch_norm": _may_be_on(spec, "batch_norm"),
        "residual": _may_be_on(spec, "residual"),
    }
    p = spec.search.space.get("hidden")
    if not isinstance(p, LayersParam):
        return "training.hidden", mlp_params(n_in, list(spec.train.hidden), n_out, **options)
    if p.values is not None:
        return "search.space.hidden", max(mlp_params(n_in, h, n_out, **options) for h in p.values)
    assert p.depth is not None and p.units is not None
    widest = [p.units[1]] * p.depth[1]
    return "search.space.hidden", mlp_params(
        n_in, widest, n_out, every_block_projects=True, **options
    )


def largest_work(spec: ExperimentSpec, shape: tuple[int, int] | None = None) -> int:
    """Multiply-adds per example of the largest network the spec can choose: a CNN's
    convolutions (``cnn_multiply_adds``), an MLP's parameters (one multiply-add each)."""
    if spec.model == "cnn":
        n_out = (shape or DATASET_SHAPES[spec.data.name or ""])[1]
        return _largest_cnn(spec, n_out, cnn_multiply_adds)
    return largest_network(spec, shape)[1]


def max_epochs(spec: ExperimentSpec) -> int | None:
    """The most epochs a trial of the spec can run (Hyperband's ``max_resource``); None
    for the user's own code, whose epochs hpsearch does not know."""
    if spec.external:
        return None
    p = spec.search.space.get("epochs")
    if p is None:
        return spec.train.epochs
    return max(int(v) for v in param_values(p))


def check_size(spec: ExperimentSpec, max_params: int, shape: tuple[int, int] | None = None) -> int:
    """The parameter count of the spec's largest network; raises SpecTooLarge over
    ``max_params``."""
    field, n = largest_network(spec, shape)
    if n > max_params:
        raise _too_many_params(field, n, max_params)
    return n


def check_budget(spec: ExperimentSpec, *, trials_cap: int | None, epochs_cap: int | None) -> None:
    """Raise SpecTooLarge naming the field when the spec asks for more trials than
    ``max_trials`` (HPS_MAX_TRIALS) or a trial for more epochs than ``max_epochs``
    (HPS_MAX_EPOCHS)."""
    if trials_cap is not None and spec.search.n_trials > trials_cap:
        raise SpecTooLarge(
            "search.n_trials",
            f"{spec.search.n_trials} trials asked for; this service allows at most "
            f"{trials_cap} per study (HPS_MAX_TRIALS)",
        )
    epochs = max_epochs(spec)
    if epochs_cap is not None and epochs is not None and epochs > epochs_cap:
        field = "search.space.epochs" if "epochs" in spec.search.space else "training.epochs"
        raise SpecTooLarge(
            field,
            f"up to {epochs} epochs asked for; this service allows at most "
            f"{epochs_cap} per trial (HPS_MAX_EPOCHS)",
        )


__all__ = [
    "DATASET_SHAPES",
    "SpecTooLarge",
    "check_budget",
    "check_size",
    "cnn_multiply_adds",
    "cnn_params",
    "largest_network",
    "largest_work",
    "max_epochs",
    "mlp_params",
]
