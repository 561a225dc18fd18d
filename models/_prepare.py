"""Preparing raw columns for the network, fitted on the training split only and stored with
the trained model (``to_dict``/``from_dict``: plain JSON).

- numeric columns: standardised with the training mean and standard deviation (a constant
  column gets std 1); with imputation, missing values become the training median first;
- categorical columns (text, booleans): one-hot encoded over the categories seen in
  training; a category never seen there maps to all zeros; with imputation, a missing
  value becomes the most frequent training category;
- the target: class labels mapped to indices 0..C-1 and back; regression targets
  standardised with the training mean and standard deviation and mapped back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models._tabular import label_value


@dataclass(frozen=True)
class Preparation:
    """How raw feature columns become the network's inputs. ``numeric``: column ->
    (mean, std, fill); ``categorical``: column -> (categories, fill); ``fill`` is None
    without imputation."""

    columns: tuple[str, ...]
    numeric: dict[str, tuple[float, float, float | None]]
    categorical: dict[str, tuple[list[str], str | None]]

    @classmethod
    def fit(cls, train: pd.DataFrame, kinds: dict[str, str], *, impute: bool) -> Preparation:
        numeric_cols = [c for c, k in kinds.items() if k == "numeric"]
        values = train[numeric_cols].to_numpy(dtype=np.float64, na_value=np.nan)  # (N, Fn)
        fills = np.nanmedian(values, axis=0) if impute and numeric_cols else None
        if fills is not None:
            values = np.where(np.isnan(values), fills, values)
        mean = values.mean(axis=0) if numeric_cols else np.zeros(0)  # (Fn,)
        std = values.std(axis=0) if numeric_cols else np.zeros(0)  # (Fn,)
        std[std == 0] = 1.0
        numeric = {
            c: (float(mean[i]), float(std[i]), None if fills is None else float(fills[i]))
            for i, c in enumerate(numeric_cols)
        }
        categorical = {}
        for c, kind in kinds.items():
            if kind != "categorical":
                continue
            text = _as_text(train[c]).dropna()
            fill = str(text.mode().sort_values().iloc[0]) if impute and len(text) else None
            categorical[c] = (sorted(text.unique().tolist()), fill)
        return cls(tuple(kinds), numeric, categorical)

    @property
    def n_features(self) -> int:
        return sum(1 if c in self.numeric else len(self.categorical[c][0]) for c in self.columns)

    def transform(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The network's inputs (N, n_features) float32 for raw rows: a DataFrame with the
        training columns (by name, any order, extra columns ignored) or an array whose
        columns are the training columns in order."""
        frame = self._frame(frame)
        numeric_cols = [c for c in self.columns if c in self.numeric]
        mean = np.array([self.numeric[c][0] for c in numeric_cols])  # (Fn,)
        std = np.array([self.numeric[c][1] for c in numeric_cols])  # (Fn,)
        values = _numbers(frame, numeric_cols)  # (N, Fn) float64
        for i, c in enumerate(numeric_cols):
            missing = np.isnan(values[:, i])
            fill = self.numeric[c][2]
            if missing.any():
                if fill is None:
                    row = int(np.argmax(missing)) + 1
                    raise ValueError(f"column {c!r} has a missing value in row {row}")
                values[missing, i] = fill
        scaled = ((values - mean) / std).astype(np.float32)  # (N, Fn)
        parts, at = [], 0
        for c in self.columns:
            if c in self.numeric:
                parts.append(scaled[:, at : at + 1])
                at += 1
            else:
                parts.append(self._one_hot(frame[c], c))  # (N, K)
        if not parts:
            return np.zeros((len(frame), 0), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)

    def _one_hot(self, col: pd.Series, name: str) -> np.ndarray:
        categories, fill = self.categorical[name]
        text = _as_text(col)
        if fill is not None:
            text = text.fillna(fill)
        codes = pd.Index(categories).get_indexer(text)  # (N,), -1 if unseen or missing
        out = np.zeros((len(col), len(categories)), dtype=np.float32)
        seen = codes >= 0
        out[np.flatnonzero(seen), codes[seen]] = 1.0
        return out

    def _frame(self, rows: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        if isinstance(rows, pd.DataFrame):
            missing = [c for c in self.columns if c not in rows.columns]
            if missing:
                raise ValueError(
                    f"missing feature columns {missing}; expected {list(self.columns)}"
                )
            return rows
        array = np.asarray(rows)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2 or array.shape[1] != len(self.columns):
            raise ValueError(
                f"expected rows of {len(self.columns)} feature columns {list(self.columns)}, "
                f"got an array of shape {array.shape}"
            )
        return pd.DataFrame(array, columns=list(self.columns))

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "numeric": {c: list(v) for c, v in self.numeric.items()},
            "categorical": {
                c: {"categories": v[0], "fill": v[1]} for c, v in self.categorical.items()
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preparation:
        numeric = {c: (float(v[0]), float(v[1]), v[2]) for c, v in d["numeric"].items()}
        categorical = {c: (list(v["categories"]), v["fill"]) for c, v in d["categorical"].items()}
        return cls(tuple(d["columns"]), numeric, categorical)


def _numbers(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    try:
        return frame[columns].to_numpy(dtype=np.float64, na_value=np.nan, copy=True)  # (N, Fn)
    except (TypeError, ValueError):
        for c in columns:
            if pd.to_numeric(frame[c], errors="coerce").isna().sum() > frame[c].isna().sum():
                raise ValueError(f"column {c!r} must be numeric") from None
        raise


def _as_text(col: pd.Series) -> pd.Series:
    """Categorical values compared as text (``True`` and ``"True"`` are one category);
    missing values stay missing."""
    return col.map(lambda v: v if v is None or (isinstance(v, float) and v != v) else str(v))


@dataclass(frozen=True)
class Target:
    """The target's encoding: ``classes`` (labels in index order) for classification, the
    training ``mean`` and ``std`` for regression."""

    task: str
    classes: tuple[Any, ...] = ()
    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def fit(cls, y_all: pd.Series, y_train: pd.Series, task: str) -> Target:
        """Classes are every label in the table (the stratified split puts each one in
        training too); the regression statistics come from the training rows only."""
        if task == "classification":
            labels = {label_value(v) for v in y_all}
            return cls(task, tuple(sorted(labels, key=_label_order)))
        values = y_train.to_numpy(dtype=np.float64)
        return cls(task, mean=float(values.mean()), std=float(values.std()) or 1.0)

    def encode(self, y: pd.Series) -> np.ndarray:
        """int64 (N,) class indices, or float32 (N, 1) standardised targets."""
        if self.task == "classification":
            index = {c: i for i, c in enumerate(self.classes)}
            return np.array([index[label_value(v)] for v in y], dtype=np.int64)
        values = y.to_numpy(dtype=np.float64)
        return ((values - self.mean) / self.std).astype(np.float32).reshape(-1, 1)

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        """Predictions in the original label space from the network's outputs."""
        if self.task == "classification":
            return np.array(self.classes, dtype=object)[outputs.argmax(axis=1)]
        return outputs.reshape(-1).astype(np.float64) * self.std + self.mean

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "classes": list(self.classes),
            "mean": self.mean,
            "std": self.std,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Target:
        return cls(d["task"], tuple(d["classes"]), float(d["mean"]), float(d["std"]))


def _label_order(v: Any) -> tuple[int, Any]:
    """Numbers before text, each in their natural order."""
    if isinstance(v, bool):
        return (0, int(v))
    if isinstance(v, int | float):
        return (0, v)
    return (1, str(v))


__all__ = ["Preparation", "Target"]
