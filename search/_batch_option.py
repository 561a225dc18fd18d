"""``--batch-trials`` / ``HPS_BATCH_TRIALS``: how many trials of one MLP or CNN study a worker
trains together as one stacked model. Pure Python (the settings and the CLI read it)."""

from __future__ import annotations

from typing import Literal

MAX_BATCH_TRIALS = 256  # the most trials one worker trains as one stack

BatchTrials = int | Literal["auto"]


def parse_batch_trials(text: str | int) -> BatchTrials:
    """ "auto" or a whole number 1..256; ValueError naming the value otherwise."""
    value = str(text).strip().lower()
    if value == "auto":
        return "auto"
    if value.isdigit() and 1 <= int(value) <= MAX_BATCH_TRIALS:
        return int(value)
    raise ValueError(
        f"batch trials must be 'auto' or a whole number 1..{MAX_BATCH_TRIALS}, got {text!r}"
    )


__all__ = ["MAX_BATCH_TRIALS", "BatchTrials", "parse_batch_trials"]
