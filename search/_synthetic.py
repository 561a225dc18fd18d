"""Spec rules of the ``synthetic`` model (``models._synthetic``): an analytic stand-in for
training that reads no data.

Its dataset is the placeholder name ``synthetic`` (the default when ``model: synthetic``
leaves ``dataset`` out), which no other model accepts and no upload may take. It reports
``dev_loss`` and ``train_loss`` only, and its own settings (``training.seconds_per_epoch``,
``training.noise``) mean nothing to a real network, so other models refuse them.
"""

from __future__ import annotations

from typing import Any

from search._conv import SYNTHETIC
from search.knobs import SYNTHETIC_KNOBS

SYNTHETIC_TASK = "regression"  # a loss to minimise, no classes: the study's task column
SYNTHETIC_METRICS = ("dev_loss", "train_loss")
SYNTHETIC_FIELDS = SYNTHETIC_KNOBS  # training.*, synthetic model only (search.knobs)


def with_synthetic_dataset(data: Any) -> Any:
    """A raw spec with ``model: synthetic`` and no dataset gets the placeholder one."""
    if isinstance(data, dict) and data.get("model") == SYNTHETIC and "dataset" not in data:
        return data | {"dataset": SYNTHETIC}
    return data


def synthetic_problem(
    *, model: str, dataset_name: str | None, dataset_id: int | None, metric: str, training: Any
) -> tuple[str, str] | None:
    """(field, message) when the spec mixes the synthetic model with real data or a real
    model with the synthetic settings; None when it fits."""
    placeholder = dataset_id is None and dataset_name == SYNTHETIC
    if model == SYNTHETIC:
        if not placeholder:
            return "dataset", (
                "model synthetic trains on no data: leave dataset out (or write dataset: synthetic)"
            )
        if metric not in SYNTHETIC_METRICS:
            return "objective.metric", (
                f"model synthetic reports {' and '.join(SYNTHETIC_METRICS)} only, not {metric}"
            )
        return None
    if placeholder:
        return "dataset", "synthetic stands for no data and needs model: synthetic"
    for name in SYNTHETIC_FIELDS:
        if getattr(training, name) != 0:
            return f"training.{name}", f"{name} is a setting of model synthetic, not {model}"
    return None


__all__ = [
    "SYNTHETIC",
    "SYNTHETIC_FIELDS",
    "SYNTHETIC_METRICS",
    "SYNTHETIC_TASK",
    "synthetic_problem",
    "with_synthetic_dataset",
]
