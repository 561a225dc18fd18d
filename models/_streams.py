"""A trial's random streams: its initial weights, its data order and its dropout masks, each
drawn from a ``torch.Generator`` seeded from the trial's seed alone.

Nothing a trial draws comes from torch's global generator, so the same trial draws the same
numbers whatever else runs in the process: alone, next to other trials in threads, or as one
slice of a stacked model (``models._stacked``), where each trial keeps its own generators.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TrialStreams:
    """``init``: the initial weights (CPU: networks are built there, then moved);
    ``data``: each epoch's shuffle order and the augmentation of its batches;
    ``dropout``: the dropout masks. ``data`` and ``dropout`` live on the trial's device."""

    init: torch.Generator
    data: torch.Generator
    dropout: torch.Generator


def trial_streams(seed: int, device: torch.device | str = "cpu") -> TrialStreams:
    """The three streams of the trial with ``seed``. ``init`` and ``data`` are seeded with
    ``seed`` itself; ``dropout`` with a seed derived from it, so that no two streams of one
    trial replay the same numbers."""
    return TrialStreams(
        init=torch.Generator().manual_seed(seed),
        data=torch.Generator(device=device).manual_seed(seed),
        dropout=torch.Generator(device=device).manual_seed(stream_seed(seed, "dropout")),
    )


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for ``stream`` of the trial with ``seed`` (a hash, the same everywhere)."""
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


__all__ = ["TrialStreams", "stream_seed", "trial_streams"]
