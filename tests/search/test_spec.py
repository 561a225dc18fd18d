"""The spec's name lists agree with models/, and the shipped examples validate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

import models
from search import spec as S

ROOT = Path(__file__).resolve().parents[2]


def test_names_match_models() -> None:
    # (knobs and built-in datasets are one table each: search.knobs, search.builtin_data)
    assert tuple(models.TASKS) == S.TASKS
    # Every objective is a field of the trainer's per-epoch metrics.
    assert set(S.METRICS) <= set(models.EpochMetrics.__dataclass_fields__)


def test_datasets_by_name_or_id() -> None:
    by_id = S.ExperimentSpec.model_validate({"name": "a", "dataset": 7})
    assert (by_id.dataset.id, by_id.dataset.name, by_id.dataset.task) == (7, None, None)
    uploaded = S.ExperimentSpec.model_validate({"name": "a", "dataset": "houses"})
    assert not uploaded.dataset.builtin and uploaded.dataset.task is None
    rmse = S.ExperimentSpec.model_validate(
        {"name": "a", "dataset": "diabetes", "objective": {"metric": "dev_rmse"}}
    )
    assert rmse.direction == "minimize"
    for bad, words in [
        ({"dataset": "iris", "objective": {"metric": "dev_rmse"}}, "needs a regression"),
        ({"dataset": "diabetes", "objective": {"metric": "dev_accuracy"}}, "needs a classif"),
        ({"dataset": {"split": [0.6, 0.2, 0.2]}}, "uploaded one by name or id"),
        ({"dataset": {"name": "iris", "id": 3}}, "built-in dataset"),
        ({"dataset": True}, "dataset"),
    ]:
        with pytest.raises(ValidationError, match=words):
            S.ExperimentSpec.model_validate({"name": "a", **bad})


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")))
def test_examples_validate(path: Path) -> None:
    spec = S.ExperimentSpec.model_validate(yaml.safe_load(path.read_text()))
    assert spec.search.n_trials >= 1


def test_cli_example_validates_as_written() -> None:
    """``hpsearch example`` prints a spec that validates and means what it says: nothing in
    it is dropped or changed by validation (a renamed field would be)."""
    from service.cli import EXAMPLE_SPEC

    written = yaml.safe_load(EXAMPLE_SPEC)
    spec = S.ExperimentSpec.model_validate(written).model_dump(mode="json", exclude_unset=True)

    def same(a: object, b: object, where: str) -> None:
        if isinstance(a, dict):
            assert isinstance(b, dict), where
            for key, value in a.items():
                assert key in b, f"{where}.{key} dropped by validation"
                same(value, b[key], f"{where}.{key}")
        elif isinstance(b, dict):  # a shorthand: ``dataset: digits``
            assert b.get("name") == a, where
        else:
            assert a == b, where

    same(written, spec, "spec")
    assert spec["search"]["space"]["hidden"]["type"] == "layers"


def test_cli_example_is_the_shipped_digits_example() -> None:
    """`hpsearch example` prints the spec bench/quality.py measures (examples/digits-random)."""
    from service.cli import EXAMPLE_SPEC

    shipped = (ROOT / "examples" / "digits-random.yaml").read_text()
    assert yaml.safe_load(EXAMPLE_SPEC) == yaml.safe_load(shipped)


def test_defaults_and_direction() -> None:
    spec = S.ExperimentSpec.model_validate({"name": "a", "dataset": "iris"})
    assert spec.dataset.split == (0.6, 0.2, 0.2)
    assert spec.direction == "minimize"
    acc = S.ExperimentSpec.model_validate(
        {"name": "a", "dataset": "iris", "objective": {"metric": "dev_accuracy"}}
    )
    assert acc.direction == "maximize"


def test_grid_budget_is_the_grid() -> None:
    space = {"activation": {"type": "categorical", "choices": ["relu", "tanh", "sigmoid"]}}
    base = {"name": "a", "dataset": "iris", "search": {"sampler": "grid", "space": space}}
    assert S.ExperimentSpec.model_validate(base).search.n_trials == 3
    base["search"] = {**base["search"], "n_trials": 2}
    with pytest.raises(ValidationError, match="smaller than the grid"):
        S.ExperimentSpec.model_validate(base)
