"""Built-in datasets: load, split train/dev/test with a seed, standardise with training stats.

Everything here is bundled with scikit-learn or generated; nothing is downloaded. The CPU
result of each (name, split, seed) is cached and shared: training never mutates its tensors.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split

DATASETS: dict[str, str] = {
    "digits": "classification",
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "moons": "classification",
    "diabetes": "regression",
}

Split = tuple[float, float, float]
_Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Dataset:
    """A train/dev/test split as tensors, inputs standardised with training statistics.

    x: float32 (N, F). y: int64 (N,) class labels, or float32 (N, 1) standardised targets
    for regression (``y * target_std + target_mean`` gives the original units).
    """

    name: str
    task: str  # "classification" | "regression"
    n_features: int
    n_classes: int  # 0 for regression
    train_x: torch.Tensor
    train_y: torch.Tensor
    dev_x: torch.Tensor
    dev_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    target_mean: float = 0.0
    target_std: float = 1.0

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with every tensor on ``device`` (tensors already there are shared)."""
        return replace(
            self,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            dev_x=self.dev_x.to(device),
            dev_y=self.dev_y.to(device),
            test_x=self.test_x.to(device),
            test_y=self.test_y.to(device),
        )


def load_dataset(name: str, *, split: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> Dataset:
    """Load a built-in dataset, split into (train, dev, test) fractions with ``seed``.

    Classification splits are stratified by class; regression splits are a plain shuffle.
    Returns a cached CPU ``Dataset``: the same object for the same arguments.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; built-in datasets are {sorted(DATASETS)}")
    fractions = tuple(float(f) for f in split)
    if len(fractions) != 3:
        raise ValueError(f"split must be 3 fractions (train, dev, test), got {split!r}")
    if not all(f > 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"split fractions must each be > 0 and sum to 1, got {split!r}")
    return _load_cached(name, (fractions[0], fractions[1], fractions[2]), int(seed))


@functools.lru_cache(maxsize=64)
def _load_cached(name: str, split: Split, seed: int) -> Dataset:
    x, y = _LOADERS[name](seed)  # (N, F), (N,)
    task = DATASETS[name]
    classification = task == "classification"
    (train_x, train_y), (dev_x, dev_y), (test_x, test_y) = _split(
        x, y, split, seed, stratify=classification
    )
    train_xt, dev_xt, test_xt = _standardise_inputs(train_x, dev_x, test_x)  # (N, F) each
    if classification:
        mean, std = 0.0, 1.0
        ys = [torch.from_numpy(a.astype(np.int64)) for a in (train_y, dev_y, test_y)]  # (N,)
    else:
        mean, std = float(train_y.mean()), float(train_y.std()) or 1.0
        ys = [_targets(a, mean, std) for a in (train_y, dev_y, test_y)]  # (N, 1)
    return Dataset(
        name=name,
        task=task,
        n_features=x.shape[1],
        n_classes=len(np.unique(y)) if classification else 0,
        train_x=train_xt,
        train_y=ys[0],
        dev_x=dev_xt,
        dev_y=ys[1],
        test_x=test_xt,
        test_y=ys[2],
        target_mean=mean,
        target_std=std,
    )


def _split(
    x: np.ndarray, y: np.ndarray, split: Split, seed: int, *, stratify: bool
) -> list[_Arrays]:
    """Seeded (train, dev, test) split; stratified by class label when ``stratify``."""
    train_frac, dev_frac, test_frac = split
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, test_size=dev_frac + test_frac, random_state=seed, stratify=y if stratify else None
    )
    x_dev, x_test, y_dev, y_test = train_test_split(
        x_rest,
        y_rest,
        test_size=test_frac / (dev_frac + test_frac),
        random_state=seed,
        stratify=y_rest if stratify else None,
    )
    return [(x_train, y_train), (x_dev, y_dev), (x_test, y_test)]


def _standardise_inputs(
    train: np.ndarray, dev: np.ndarray, test: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre and scale every split with the training mean/std (constant columns: std 1)."""
    train = train.astype(np.float64)
    mean = train.mean(axis=0)  # (F,)
    std = train.std(axis=0)  # (F,)
    std[std == 0] = 1.0

    def scale(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((a - mean) / std).astype(np.float32))  # (N, F)

    return scale(train), scale(dev), scale(test)


def _targets(y: np.ndarray, mean: float, std: float) -> torch.Tensor:
    return torch.from_numpy(((y - mean) / std).astype(np.float32)).reshape(-1, 1)  # (N, 1)


def _bundled(loader: Callable[..., tuple[np.ndarray, np.ndarray]]) -> Callable[[int], _Arrays]:
    """A scikit-learn bundled set; the seed only affects the split, not the data."""

    def load(seed: int) -> _Arrays:
        x, y = loader(return_X_y=True)
        return np.asarray(x), np.asarray(y)

    return load


def _moons(seed: int) -> _Arrays:
    x, y = sk_datasets.make_moons(n_samples=1000, noise=0.2, random_state=seed)
    return np.asarray(x), np.asarray(y)


_LOADERS: dict[str, Callable[[int], _Arrays]] = {
    "digits": _bundled(sk_datasets.load_digits),
    "iris": _bundled(sk_datasets.load_iris),
    "wine": _bundled(sk_datasets.load_wine),
    "breast_cancer": _bundled(sk_datasets.load_breast_cancer),
    "moons": _moons,
    "diabetes": _bundled(sk_datasets.load_diabetes),
}
