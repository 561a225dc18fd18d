"""Which MLP or CNN trials can share a stack, and a partition of many configs into stacks.

A stack shares the model (an MLP or a CNN), its layout (depth, activation, dropout on or
off, batch norm, residual blocks and their shortcut kinds; a CNN's convolution blocks, with
their channels, and its head), the batch size, the optimizer and the device: ``stack_key``.
Widths of hidden layers may differ (the stack pads them with units held at 0), but by
default ``stack_groups`` stacks equal widths only: then each trial's result does not
depend on its stack-mates (it matches its run alone to rounding: ``tests/models/
test_stacked.py``). A padded trial's matmuls sum over its stack's widest width, so its
rounding depends on its stack-mates: a chaotic run (high lr) can amplify it (measured:
one of 32 digits trials at 30 epochs drifted by 8.8e-5 in dev loss). ``max_padding`` > 1
trades that for stacks of searched widths. Pure functions of the configs.
"""

from __future__ import annotations

from collections.abc import Sequence

from models._config import TrainConfig
from models._mlp import _residual_groups
from search.knobs import STACKED_MODELS

_KEY_NAMES = (  # stack_key's fields, in order
    *("model", "conv", "conv_head"),
    *("depth", "activation", "dropout", "batch_norm", "residual", "shortcuts"),
    *("batch_size", "optimizer", "device"),
)


def stack_key(config: TrainConfig) -> tuple[object, ...] | None:
    """What trials must share to be stacked (``None``: this config trains alone): equal
    keys stack, whatever their widths."""
    if config.model not in STACKED_MODELS:
        return None
    cnn = config.model == "cnn"
    shortcuts: tuple[bool, ...] = ()
    if config.residual:  # identity (True) or projection shortcut around each pair
        groups = _residual_groups(config.hidden)
        shortcuts = tuple(
            a[-1] == b[-1] for a, b in zip(groups, groups[1:], strict=False) if len(b) == 2
        )
    return (
        config.model,
        config.conv if cnn else (),
        config.conv_head if cnn else "",
        len(config.hidden),
        config.activation,
        config.keep_prob < 1.0,
        config.batch_norm,
        config.residual,
        shortcuts,
        config.batch_size,
        config.optimizer,
        config.device,
    )


def stack_groups(
    configs: Sequence[TrainConfig], *, max_trials: int | None = None, max_padding: float = 1.0
) -> list[list[int]]:
    """Partition ``configs`` (by index) into stacks: equal ``stack_key``, at most
    ``max_trials`` each, and widths close enough that padding them all to the widest costs
    at most ``max_padding`` times the trials' own hidden-layer work (1.0, the default:
    equal widths only, each result independent of its stack-mates; see the module
    docstring). Configs that cannot be stacked come back alone. Deterministic."""
    if max_trials is not None and max_trials < 1:
        raise ValueError(f"max_trials must be >= 1, got {max_trials!r}")
    if not max_padding >= 1.0:
        raise ValueError(f"max_padding must be >= 1, got {max_padding!r}")
    order = sorted(
        range(len(configs)), key=lambda i: (repr(stack_key(configs[i])), configs[i].hidden)
    )
    groups: list[list[int]] = []
    for i in order:
        key = stack_key(configs[i])
        last = groups[-1] if groups else []
        fits = (
            key is not None
            and bool(last)
            and stack_key(configs[last[0]]) == key
            and (max_trials is None or len(last) < max_trials)
            and _padding([configs[j].hidden for j in [*last, i]]) <= max_padding
        )
        if fits:
            last.append(i)
        else:
            groups.append([i])
    return sorted(sorted(g) for g in groups)


def _padding(hidden: list[tuple[int, ...]]) -> float:
    """Padded work over own work of these hidden layers (units plus unit-to-unit weights)."""

    def work(h: Sequence[int]) -> int:
        return sum(h) + sum(a * b for a, b in zip(h, h[1:], strict=False))

    widest = [max(h[d] for h in hidden) for d in range(len(hidden[0]))]
    return len(hidden) * work(widest) / sum(work(h) for h in hidden)


# ``--batch-trials auto``: (most multiply-adds per example, trials per stack), smallest
# networks first (``search.size.largest_work``: an MLP's parameters; a CNN's convolutions at
# every map position, then its head). A small network leaves a CPU core's vector units, and
# nearly all of a GPU, idle: stacking fills them; a large one fills them alone. CPU: the best
# K measured per size, one thread (bench/batched.py end to end: 1.5k and 4.8k parameters,
# best K = 32, 3.0-4.9x; bench/stacked_kernel.py --clock cpu on digits MLPs: 4.8k 3.8x at
# 32, 19k 1.9x at 8 and no more past it, 77k 1.1x at 4 to 16, 307k slower stacked at every
# K); the limits are about halfway (geometric) between measured sizes. CNNs on digits
# (stacked_kernel.py --conv) sit on the same curve: 8,8 channels (15k multiply-adds) 1.7x at
# 8 and 1.9x at 32, 16,32 (86k) 1.3x at 4 and 1.7x at 8, 32,64 (318k) 1.0x at 8 and 32.
# GPU: not yet measured.
AUTO_STACK = {
    "cpu": ((10_000, 32), (40_000, 8), (100_000, 4)),
    "cuda": ((1_000_000, 32), (10_000_000, 8), (50_000_000, 2)),
}


def auto_stack_size(work: int, device_type: str) -> int:
    """How many trials of a network of ``work`` multiply-adds per example (an MLP's
    parameter count) one stack holds on a device of this type ("cpu", "cuda"):
    ``AUTO_STACK``, 1 past its largest."""
    for most, k in AUTO_STACK.get(device_type, AUTO_STACK["cpu"]):
        if work <= most:
            return k
    return 1


def check_stack(configs: Sequence[TrainConfig]) -> None:
    """Raise ValueError unless ``configs`` can be trained as one stack."""
    if not configs:
        raise ValueError("a stack needs at least one config")
    first = stack_key(configs[0])
    for c in configs:
        key = stack_key(c)
        if key is None or first is None:
            raise ValueError(f"model {c.model!r} is not stacked: train it alone")
        diff = [n for n, a, b in zip(_KEY_NAMES, key, first, strict=True) if a != b]
        if diff:
            raise ValueError(f"config with seed {c.seed} differs from the first in {diff}")


__all__ = ["AUTO_STACK", "auto_stack_size", "check_stack", "stack_groups", "stack_key"]
