"""The bias/variance reading: its rules on given errors, and on networks trained to
underfit (a tiny network on a hard problem) and to overfit (a large one without
regularisation on a few rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import Table, TrainConfig, feature_kinds, load_dataset, make_dataset, train
from search.diagnosis import BOTH, FINE, HIGH_BIAS, HIGH_VARIANCE, diagnose
from search.trial_runner import trial_metrics


@pytest.mark.parametrize(
    ("train_error", "dev_error", "label"),
    [
        (0.02, 0.05, FINE),
        (0.40, 0.42, HIGH_BIAS),  # barely better than the baseline's 0.5 on training rows
        (0.00, 0.30, HIGH_VARIANCE),  # perfect on training rows, far worse on dev
        (0.30, 0.45, BOTH),
    ],
)
def test_rules(train_error: float, dev_error: float, label: str) -> None:
    d = diagnose({"train_error": train_error, "dev_error": dev_error, "baseline_error": 0.5})
    assert d is not None and d.label == label
    assert d.gap == pytest.approx(dev_error - train_error)
    if label in (HIGH_BIAS, BOTH):
        assert any("bigger network" in r for r in d.remedies)
        assert any("train longer" in r for r in d.remedies)
    if label in (HIGH_VARIANCE, BOTH):
        assert any("more training data" in r for r in d.remedies)
        assert any("keep_prob" in r for r in d.remedies)
        assert any("weight_decay" in r for r in d.remedies)
    if label == FINE:
        assert d.remedies == ()


def test_no_reading_without_the_errors() -> None:
    assert diagnose(None) is None
    assert diagnose({"train_loss": 0.1, "dev_loss": 0.2}) is None  # a diverged trial
    assert diagnose({"train_error": 0.1, "dev_error": None, "baseline_error": 0.5}) is None
    assert diagnose({"train_error": 0.1, "dev_error": 0.1, "baseline_error": 0.0}) is None


def _reading(config: TrainConfig, data: object) -> str:
    result = train(config, data)  # type: ignore[arg-type]
    assert result.status == "completed"
    d = diagnose(trial_metrics(result, data.baseline_error))  # type: ignore[attr-defined]
    assert d is not None
    return d.label


def test_a_tiny_network_on_a_hard_problem_is_high_bias() -> None:
    digits = load_dataset("digits")  # 10 classes, 64 inputs: one hidden unit cannot fit it
    config = TrainConfig(hidden=(1,), epochs=3, lr=1e-3, batch_size=64)
    assert _reading(config, digits) == HIGH_BIAS


def test_a_large_unregularised_network_on_few_rows_is_high_variance() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 10)), columns=[f"f{i}" for i in range(10)])
    frame["label"] = rng.choice(["a", "b"], size=60)  # labels the inputs cannot predict
    table = Table(frame, "label", "classification", feature_kinds(frame, "label"))
    data = make_dataset("noise", table, (0.6, 0.2, 0.2), 0)  # 36 training rows
    config = TrainConfig(hidden=(256, 256), epochs=150, lr=3e-3, batch_size=36)
    assert _reading(config, data) == HIGH_VARIANCE
