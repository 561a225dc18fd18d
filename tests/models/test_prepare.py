"""Preparing raw columns: statistics from the training split only, one-hot over training
categories (unseen ones all zeros), imputation with training medians / most frequent
values, class labels to indices and back, and a JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models import Preparation, TableError, Target, check_table

KINDS = {"n": "numeric", "c": "categorical"}


def test_fitted_on_the_training_rows_only() -> None:
    train = pd.DataFrame({"n": [1.0, 2.0, 3.0, np.nan], "c": ["a", "b", "a", None]})
    dev = pd.DataFrame({"n": [1000.0, np.nan], "c": ["zzz", None]})
    prep = Preparation.fit(train, KINDS, impute=True)
    assert prep.numeric["n"][2] == 2.0  # the training median fills the holes
    mean, std = np.mean([1, 2, 3, 2]), np.std([1, 2, 3, 2])
    assert prep.numeric["n"][:2] == pytest.approx((mean, std))
    assert prep.categorical["c"] == (["a", "b"], "a")
    x = prep.transform(dev)  # (2, 1 + 2)
    assert x.shape == (2, 3) and x.dtype == np.float32
    assert x[0, 0] == pytest.approx((1000 - mean) / std)
    assert x[1, 0] == pytest.approx((2.0 - mean) / std)
    assert x[0, 1:].tolist() == [0.0, 0.0]  # a category never seen in training
    assert x[1, 1:].tolist() == [1.0, 0.0]  # missing: the most frequent training category
    again = Preparation.from_dict(json.loads(json.dumps(prep.to_dict())))
    assert np.array_equal(again.transform(dev), x)
    as_array = prep.transform(np.array([[1000.0, "zzz"]], dtype=object))
    assert np.array_equal(as_array, x[:1])


def test_without_imputation_missing_numbers_are_refused() -> None:
    prep = Preparation.fit(pd.DataFrame({"n": [1.0, 2.0], "c": ["a", "b"]}), KINDS, impute=False)
    with pytest.raises(ValueError, match="column 'n' has a missing value in row 2"):
        prep.transform(pd.DataFrame({"n": [1.0, np.nan], "c": ["a", "b"]}))
    with pytest.raises(ValueError, match="missing feature columns"):
        prep.transform(pd.DataFrame({"n": [1.0]}))


def test_labels_map_to_indices_and_back() -> None:
    y = pd.Series(["dog", "cat", "bird", "cat"])
    target = Target.fit(y, y.iloc[:3], "classification")
    assert target.classes == ("bird", "cat", "dog")
    codes = target.encode(y)
    assert codes.tolist() == [2, 1, 0, 1]
    assert target.decode(np.eye(3)[codes]).tolist() == y.tolist()
    prices = pd.Series([10.0, 20.0, 30.0, 1000.0])
    scale = Target.fit(prices, prices.iloc[:3], "regression")  # the outlier is not training
    assert (scale.mean, scale.std) == pytest.approx((20.0, np.std([10, 20, 30])))
    assert scale.decode(scale.encode(prices)) == pytest.approx(prices.to_numpy())


def test_task_inference() -> None:
    frame = pd.DataFrame({"x": np.arange(40.0), "label": [1, 2] * 20})
    frame["price"] = frame["x"] * 1.5 + 0.25
    assert check_table(frame, "label").task == "classification"
    summary = check_table(frame, "price")
    assert (summary.task, summary.task_inferred) == ("regression", True)
    assert check_table(frame, "price", task="regression").task_inferred is False
    with pytest.raises(TableError, match="class 1 of target column 'label' has 3 row"):
        check_table(frame.head(6), "label")
