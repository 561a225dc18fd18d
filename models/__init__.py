"""Models: datasets (built-in or a user's table), the MLP and the CNN, their training loop
and the model file a study hands back (``load_model``); and the ``synthetic`` model, an
analytic stand-in for training (``train_synthetic``). PyTorch, numpy, scikit-learn and
pandas only.

Knows nothing of Optuna, SQL or HTTP: ``train`` takes a ``TrainConfig``, a ``Dataset`` and an
optional per-epoch callback, and returns a ``TrainResult``. ``train_stacked`` trains several
MLP or CNN trials as one stacked model, each getting the result it would get alone
(``stack_groups`` says which configs can share a stack).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models._augment import MAX_ROTATION, MAX_SHIFT, Augment
    from models._checkpoint import Checkpoint, config_key, read_checkpoint
    from models._cnn import CNN, CONV_HEADS, POOLS, ConvBlock, check_feature_maps, feature_map_sizes
    from models._config import MODELS, TrainConfig
    from models._datasets import (
        DATASETS,
        IMAGE_SHAPES,
        Dataset,
        Table,
        builtin_table,
        load_dataset,
        make_dataset,
        split_table,
    )
    from models._device import device_name
    from models._export import (
        MODEL_FORMAT,
        Predictor,
        load_model,
        model_config,
        pack_model,
        read_model,
        weights_bytes,
    )
    from models._mlp import ACTIVATIONS, MLP, WEIGHT_INITS
    from models._prepare import Preparation, Target
    from models._schedules import LR_SCHEDULES
    from models._stack_groups import auto_stack_size, check_stack, stack_groups, stack_key
    from models._stacked import OnEnd, train_stacked
    from models._synthetic import synthetic_dev_loss, synthetic_gap, train_synthetic
    from models._tabular import (
        MAX_CATEGORIES,
        TASKS,
        TableError,
        TableSummary,
        check_table,
        detect_format,
        feature_kinds,
        read_table,
    )
    from models.train import (
        EpochMetrics,
        OnEpoch,
        Scores,
        TrainResult,
        evaluate,
        resolve_device,
        scores,
        train,
        warm_up,
    )
    from search.knobs import OPTIMIZERS

# Where each public name lives: imported on first use (PEP 562), so that a worker serving
# synthetic trials, whose configuration and analytic curves need no torch, never loads
# torch, scikit-learn or pandas (about 300 MB of a worker's 370 MB).
_WHERE = {
    "device_name": "models._device",
    "Checkpoint": "models._checkpoint",
    "config_key": "models._checkpoint",
    "read_checkpoint": "models._checkpoint",
    "Augment": "models._augment",
    "MAX_ROTATION": "models._augment",
    "MAX_SHIFT": "models._augment",
    "CNN": "models._cnn",
    "CONV_HEADS": "models._cnn",
    "ConvBlock": "models._conv_block",
    "POOLS": "models._cnn",
    "check_feature_maps": "models._cnn",
    "feature_map_sizes": "models._conv_block",
    "MODELS": "models._config",
    "TrainConfig": "models._config",
    "DATASETS": "models._datasets",
    "Dataset": "models._datasets",
    "IMAGE_SHAPES": "models._datasets",
    "Table": "models._datasets",
    "builtin_table": "models._datasets",
    "load_dataset": "models._datasets",
    "make_dataset": "models._datasets",
    "split_table": "models._datasets",
    "MODEL_FORMAT": "models._export",
    "Predictor": "models._export",
    "load_model": "models._export",
    "model_config": "models._export",
    "pack_model": "models._export",
    "read_model": "models._export",
    "weights_bytes": "models._export",
    "ACTIVATIONS": "models._mlp",
    "MLP": "models._mlp",
    "WEIGHT_INITS": "models._mlp",
    "Preparation": "models._prepare",
    "Target": "models._prepare",
    "LR_SCHEDULES": "models._schedules",
    "auto_stack_size": "models._stack_groups",
    "check_stack": "models._stack_groups",
    "stack_groups": "models._stack_groups",
    "stack_key": "models._stack_groups",
    "OnEnd": "models._stacked",
    "train_stacked": "models._stacked",
    "synthetic_dev_loss": "models._synthetic",
    "synthetic_gap": "models._synthetic",
    "train_synthetic": "models._synthetic",
    "MAX_CATEGORIES": "models._tabular",
    "TASKS": "models._tabular",
    "TableError": "models._tabular",
    "TableSummary": "models._tabular",
    "check_table": "models._tabular",
    "detect_format": "models._tabular",
    "feature_kinds": "models._tabular",
    "read_table": "models._tabular",
    "EpochMetrics": "models._results",
    "OnEpoch": "models.train",
    "Scores": "models._results",
    "TrainResult": "models._results",
    "evaluate": "models.train",
    "resolve_device": "models.train",
    "scores": "models.train",
    "train": "models.train",
    "warm_up": "models.train",
    "OPTIMIZERS": "search.knobs",
}


class _Package(types.ModuleType):
    """``models.train`` is the training function: importing the submodule of that name
    (``from models.train import ...``) must not put the module in its place."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "train" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "ACTIVATIONS",
    "CNN",
    "CONV_HEADS",
    "DATASETS",
    "IMAGE_SHAPES",
    "LR_SCHEDULES",
    "MAX_CATEGORIES",
    "MAX_ROTATION",
    "MAX_SHIFT",
    "MLP",
    "MODELS",
    "MODEL_FORMAT",
    "OPTIMIZERS",
    "POOLS",
    "TASKS",
    "WEIGHT_INITS",
    "Augment",
    "Checkpoint",
    "ConvBlock",
    "Dataset",
    "EpochMetrics",
    "OnEnd",
    "OnEpoch",
    "Predictor",
    "Preparation",
    "Scores",
    "Table",
    "TableError",
    "TableSummary",
    "Target",
    "TrainConfig",
    "TrainResult",
    "builtin_table",
    "check_feature_maps",
    "auto_stack_size",
    "check_stack",
    "check_table",
    "config_key",
    "detect_format",
    "device_name",
    "evaluate",
    "feature_kinds",
    "feature_map_sizes",
    "load_dataset",
    "load_model",
    "make_dataset",
    "model_config",
    "pack_model",
    "read_checkpoint",
    "read_model",
    "read_table",
    "resolve_device",
    "scores",
    "split_table",
    "stack_groups",
    "stack_key",
    "synthetic_dev_loss",
    "synthetic_gap",
    "train",
    "train_stacked",
    "train_synthetic",
    "warm_up",
    "weights_bytes",
]
