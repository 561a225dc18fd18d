"""Small made-up tables for upload and training tests: learnable, seeded, a few KB."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd


def classification_frame(n: int = 150, seed: int = 0) -> pd.DataFrame:
    """Numbers, a low-cardinality text column and string labels that depend on both."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    score = x1 + 0.5 * x2 + np.where(colour == "red", 1.0, 0.0)
    label = np.where(score > 0.8, "cat", np.where(score > -0.4, "dog", "bird"))
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "animal": label})


def regression_frame(n: int = 150, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    size = rng.choice(["S", "M", "L"], size=n)
    bump = np.select([size == "S", size == "M"], [-2.0, 0.0], 2.0)
    price = 50 + 10 * x1 - 5 * x2 + 3 * bump + rng.normal(scale=0.5, size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "size": size, "price": price})


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def small_spec(name: str, dataset: Any, *, metric: str = "dev_loss", **search: Any) -> dict:
    """A quick random search: 4 trials of 8 epochs over the learning rate."""
    return {
        "name": name,
        "dataset": dataset,
        "objective": {"metric": metric},
        "search": {
            "sampler": "random",
            "n_trials": 4,
            "parallelism": 1,
            "seed": 5,
            "space": {"lr": {"type": "float", "low": 3e-3, "high": 3e-2, "log": True}},
        }
        | search,
        "training": {"epochs": 8, "batch_size": 16, "hidden": [16]},
    }


__all__ = ["classification_frame", "csv_bytes", "parquet_bytes", "regression_frame", "small_spec"]
