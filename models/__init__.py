"""Models: datasets (built-in or a user's table), the MLP and the CNN, their training loop
and the model file a study hands back (``load_model``); and the ``synthetic`` model, an
analytic stand-in for training (``train_synthetic``). PyTorch, numpy, scikit-learn and
pandas only.

Knows nothing of Optuna, SQL or HTTP: ``train`` takes a ``TrainConfig``, a ``Dataset`` and an
optional per-epoch callback, and returns a ``TrainResult``. ``train_stacked`` trains several
MLP trials as one stacked model, each getting the result it would get alone
(``stack_groups`` says which configs can share a stack).
"""

from __future__ import annotations

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
from models._stack_groups import check_stack, stack_groups, stack_key
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
    "check_stack",
    "check_table",
    "config_key",
    "detect_format",
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
