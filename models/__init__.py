"""Models: built-in datasets, the MLP and its training loop. Pure PyTorch.

Knows nothing of Optuna, SQL or HTTP: ``train`` takes a ``TrainConfig``, a ``Dataset`` and an
optional per-epoch callback, and returns a ``TrainResult``.
"""

from __future__ import annotations

from models._datasets import DATASETS, Dataset, load_dataset
from models._mlp import ACTIVATIONS, MLP, WEIGHT_INITS
from models.train import (
    OPTIMIZERS,
    EpochMetrics,
    OnEpoch,
    TrainConfig,
    TrainResult,
    evaluate,
    resolve_device,
    train,
    warm_up,
)

__all__ = [
    "ACTIVATIONS",
    "DATASETS",
    "MLP",
    "OPTIMIZERS",
    "WEIGHT_INITS",
    "Dataset",
    "EpochMetrics",
    "OnEpoch",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "load_dataset",
    "resolve_device",
    "train",
    "warm_up",
]
