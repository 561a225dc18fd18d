"""The model file a study hands back, and ``load_model`` that turns it into predictions.

One file, a zip archive of two members:

- ``config.json``: the architecture, how raw columns are prepared (fitted on the training
  split), the class labels or the target's scale, and the metrics (dev, train, and the
  held-out test metrics once the study has scored its winner);
- ``state_dict.pt``: the network's ``state_dict`` as ``torch.save`` writes it (read back with
  ``weights_only=True``: no code runs on loading).

Imports torch, numpy and pandas only: a user can load a model without hpsearch's service
(no Optuna, SQL or HTTP).
"""

from __future__ import annotations

import io
import json
import zipfile
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from models._cnn import CNN
from models._datasets import Dataset
from models._mlp import MLP
from models._prepare import Preparation, Target

MODEL_FORMAT = "hpsearch-model"
MODEL_VERSION = 1
CONFIG_MEMBER, WEIGHTS_MEMBER = "config.json", "state_dict.pt"


def model_config(
    model: MLP | CNN, hidden: tuple[int, ...], data: Dataset, metrics: dict[str, Any]
) -> dict[str, Any]:
    """The JSON half of a model file for ``model`` trained on ``data``."""
    if data.preparation is None or data.target is None:
        raise ValueError(f"dataset {data.name!r} carries no preparation to export")
    return {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "architecture": model.architecture()
        if isinstance(model, CNN)
        else {
            "type": "mlp",
            "n_features": data.n_features,
            "hidden": list(hidden),
            "n_outputs": data.n_classes if data.task == "classification" else 1,
            "activation": model.activation,
            "keep_prob": model.keep_prob,
            "weight_init": model.weight_init,
            "batch_norm": model.batch_norm,
            "residual": model.residual,
        },
        "task": data.task,
        "dataset": data.name,
        "preparation": data.preparation.to_dict(),
        "target": data.target.to_dict(),
        "metrics": metrics,
    }


def weights_bytes(model: nn.Module) -> bytes:
    """``model``'s state_dict (on the CPU) as ``torch.save`` bytes."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def pack_model(config: dict[str, Any], weights: bytes) -> bytes:
    """The single model file: a zip of ``config.json`` and ``state_dict.pt``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(CONFIG_MEMBER, json.dumps(config, indent=2, sort_keys=True))
        archive.writestr(WEIGHTS_MEMBER, weights)
    return buffer.getvalue()


class Predictor:
    """A trained network with its preparation: call it on raw rows (a DataFrame with the
    training feature columns, or a numpy array of them in order) to get predictions in
    the original label space (class labels, or numbers in the target's units)."""

    def __init__(self, config: dict[str, Any], weights: bytes) -> None:
        if config.get("format") != MODEL_FORMAT:
            raise ValueError(f"not an {MODEL_FORMAT} file (format {config.get('format')!r})")
        arch = config["architecture"]
        self.config = config
        self.task: str = config["task"]
        self.preparation = Preparation.from_dict(config["preparation"])
        self.target = Target.from_dict(config["target"])
        self.network: nn.Module = (
            CNN.from_architecture(arch)
            if arch.get("type") == "cnn"
            else MLP(
                arch["n_features"],
                arch["hidden"],
                arch["n_outputs"],
                activation=arch["activation"],
                keep_prob=arch["keep_prob"],
                weight_init=arch["weight_init"],
                batch_norm=arch.get("batch_norm", False),  # files written before these options
                residual=arch.get("residual", False),
            )
        )
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        self.network.load_state_dict(state)
        self.network.eval()

    @property
    def classes(self) -> list[Any]:
        return list(self.target.classes)

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.config.get("metrics") or {})

    @torch.no_grad()
    def outputs(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The network's raw outputs: (N, C) logits, or (N, 1) standardised predictions."""
        x = torch.from_numpy(self.preparation.transform(rows))  # (N, F)
        return self.network(x).numpy()  # (N, C) or (N, 1)

    def predict_proba(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Class probabilities (N, C), columns in the order of ``classes``."""
        if self.task != "classification":
            raise ValueError("predict_proba is for classification models")
        logits = torch.from_numpy(self.outputs(rows))
        return torch.softmax(logits, dim=1).numpy()

    def __call__(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self.target.decode(self.outputs(rows))


def read_model(data: bytes) -> Predictor:
    """A ``Predictor`` from the bytes of a model file."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            config = json.loads(archive.read(CONFIG_MEMBER))
            weights = archive.read(WEIGHTS_MEMBER)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"not an {MODEL_FORMAT} file: {exc}") from None
    return Predictor(config, weights)


def load_model(path: str | PathLike[str]) -> Predictor:
    """Load a model file downloaded from hpsearch (``hpsearch download``): returns a
    callable from raw feature rows to predictions in the original label space."""
    with open(path, "rb") as f:
        return read_model(f.read())


__all__ = [
    "MODEL_FORMAT",
    "Predictor",
    "load_model",
    "model_config",
    "pack_model",
    "read_model",
    "weights_bytes",
]
