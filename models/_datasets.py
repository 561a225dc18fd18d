"""Datasets: built-in or a user's table, split train/dev/test with a seed, prepared with
statistics of the training split only (``models._prepare``).

Everything here is bundled with scikit-learn or generated; nothing is downloaded. The CPU
result of each (name, split, seed) is cached and shared: training never mutates its tensors.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split

from models._prepare import Preparation, Target
from search.builtin_data import DATASET_TASKS as DATASETS
from search.builtin_data import IMAGE_SHAPES

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
    preparation: Preparation | None = None  # how raw columns became x (fitted on train)
    target: Target | None = None  # how the target became y (and back)
    baseline_error: float = float("nan")  # dev error of the majority class / the mean
    image_shape: tuple[int, int, int] | None = None  # (C, H, W) of image datasets, else None

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
    data = make_dataset(name, builtin_table(name, seed), split, seed)
    return replace(data, image_shape=IMAGE_SHAPES.get(name))


@dataclass(frozen=True)
class Table:
    """Raw rows to learn from: ``frame`` holds the feature columns and the target column;
    ``kinds`` says which features are numeric and which categorical."""

    frame: pd.DataFrame
    target: str
    task: str  # "classification" | "regression"
    kinds: dict[str, str]
    impute: bool = False


def builtin_table(name: str, seed: int = 0) -> Table:
    """A built-in dataset as raw rows: numeric features ``x0..x{F-1}``, target ``y``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; built-in datasets are {sorted(DATASETS)}")
    x, y = _LOADERS[name](seed)  # (N, F), (N,)
    columns = [f"x{i}" for i in range(x.shape[1])]
    frame = pd.DataFrame(x, columns=columns)
    frame["y"] = y
    return Table(frame, "y", DATASETS[name], dict.fromkeys(columns, "numeric"))


def split_table(table: Table, split: Sequence[float], seed: int) -> list[pd.DataFrame]:
    """The (train, dev, test) rows of ``table`` for these fractions and seed; stratified by
    class for classification. Depends on the target column only, never on the features."""
    y = table.frame[table.target].to_numpy()
    fractions = (float(split[0]), float(split[1]), float(split[2]))
    classification = table.task == "classification"
    if classification and y.dtype.kind not in "biuf":
        y = np.array([str(v) for v in y])
    parts = _split(np.arange(len(y)), y, fractions, seed, stratify=classification)
    return [table.frame.iloc[idx] for idx, _ in parts]


def make_dataset(name: str, table: Table, split: Sequence[float], seed: int) -> Dataset:
    """Split ``table``, fit the preparation of inputs and target on the training rows only
    and apply it to every split."""
    train, dev, test = split_table(table, split, seed)
    prep = Preparation.fit(train, table.kinds, impute=table.impute)
    target = Target.fit(table.frame[table.target], train[table.target], table.task)
    xs = [torch.from_numpy(prep.transform(part)) for part in (train, dev, test)]  # (N, F)
    ys = [torch.from_numpy(target.encode(part[table.target])) for part in (train, dev, test)]
    return Dataset(
        name=name,
        task=table.task,
        n_features=prep.n_features,
        n_classes=len(target.classes),
        train_x=xs[0],
        train_y=ys[0],
        dev_x=xs[1],
        dev_y=ys[1],
        test_x=xs[2],
        test_y=ys[2],
        target_mean=target.mean,
        target_std=target.std,
        preparation=prep,
        target=target,
        baseline_error=_baseline_error(train[table.target], dev[table.target], target),
    )


def _baseline_error(train_y: pd.Series, dev_y: pd.Series, target: Target) -> float:
    """The dev error of a predictor that ignores the inputs: the training set's most
    frequent class (error rate), or its mean (RMSE in the target's units)."""
    if target.task == "classification":
        codes = target.encode(train_y)
        majority = np.bincount(codes, minlength=len(target.classes)).argmax()
        return float(np.mean(target.encode(dev_y) != majority))
    dev = dev_y.to_numpy(dtype=np.float64)
    return float(np.sqrt(np.mean((dev - target.mean) ** 2)))


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
if set(_LOADERS) != set(DATASETS):  # one loader per row of search.builtin_data's table
    raise ImportError(f"built-in datasets without a loader: {set(DATASETS) ^ set(_LOADERS)}")
