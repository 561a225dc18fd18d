from __future__ import annotations

import numpy as np
import pytest
import torch

from models import DATASETS, Dataset, load_dataset
from models._datasets import _LOADERS, _load_cached
from search.builtin_data import BUILTIN_DATASETS


def test_the_registry_is_the_table_and_every_row_has_a_loader() -> None:
    assert {name: d.task for name, d in BUILTIN_DATASETS.items()} == DATASETS
    assert set(_LOADERS) == set(BUILTIN_DATASETS)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_loads_with_consistent_shapes(name: str) -> None:
    data = load_dataset(name)
    assert data.name == name and data.task == DATASETS[name]
    splits = [(data.train_x, data.train_y), (data.dev_x, data.dev_y), (data.test_x, data.test_y)]
    for x, y in splits:
        assert x.dtype == torch.float32 and x.shape[1] == data.n_features
        assert y.shape[0] == x.shape[0]
        if data.task == "classification":
            assert y.dtype == torch.int64 and y.dim() == 1
            assert int(y.min()) >= 0 and int(y.max()) < data.n_classes
        else:
            assert y.dtype == torch.float32 and y.shape[1:] == (1,)
    if data.task == "classification":
        assert data.n_classes >= 2
    else:
        assert data.n_classes == 0


@pytest.mark.parametrize("split", [(0.6, 0.2, 0.2), (0.7, 0.15, 0.15), (0.5, 0.3, 0.2)])
def test_split_sizes_match_fractions(split: tuple[float, float, float]) -> None:
    data = load_dataset("digits", split=split)
    sizes = [data.train_x.shape[0], data.dev_x.shape[0], data.test_x.shape[0]]
    total = sum(sizes)
    assert total == 1797
    for size, frac in zip(sizes, split, strict=True):
        assert abs(size - frac * total) <= 2


@pytest.mark.parametrize("name", ["digits", "iris", "wine", "breast_cancer", "moons"])
def test_classification_splits_are_stratified(name: str) -> None:
    data = load_dataset(name)
    ys = [data.train_y, data.dev_y, data.test_y]
    all_y = torch.cat(ys)
    overall = torch.bincount(all_y, minlength=data.n_classes).double() / len(all_y)
    for y in ys:
        counts = torch.bincount(y, minlength=data.n_classes).double()
        # each class gets its share of the split, up to rounding
        assert torch.all((counts - overall * len(y)).abs() <= 1.5), (name, counts)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_inputs_standardised_with_training_statistics(name: str) -> None:
    data = load_dataset(name)
    mean = data.train_x.double().mean(dim=0)  # (F,)
    std = data.train_x.double().std(dim=0, correction=0)  # (F,)
    assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-5)
    # constant training columns (e.g. digits' blank border pixels) stay all-zero
    assert torch.all(((std - 1).abs() < 1e-4) | (std == 0))
    assert (std > 0).any()


def test_dev_split_is_not_standardised_on_its_own() -> None:
    data = load_dataset("digits")
    dev_mean = data.dev_x.double().mean(dim=0)
    dev_std = data.dev_x.double().std(dim=0, correction=0)
    assert dev_mean.abs().max() > 1e-3
    assert (dev_std - 1).abs().max() > 1e-3


def test_regression_target_standardised_with_training_statistics() -> None:
    data = load_dataset("diabetes")
    y = data.train_y.double()
    assert abs(float(y.mean())) < 1e-5
    assert abs(float(y.std(correction=0)) - 1) < 1e-4
    # diabetes targets are disease progression scores in roughly [25, 346]
    assert 100 < data.target_mean < 200 and 50 < data.target_std < 120
    raw = data.dev_y * data.target_std + data.target_mean
    assert float(raw.min()) >= 20 and float(raw.max()) <= 350


def test_same_seed_same_split_different_seed_different() -> None:
    split = (0.6, 0.2, 0.2)
    first: Dataset = _load_cached.__wrapped__("wine", split, 3)
    again: Dataset = _load_cached.__wrapped__("wine", split, 3)
    other: Dataset = _load_cached.__wrapped__("wine", split, 4)
    for a, b in [(first.train_x, again.train_x), (first.test_y, again.test_y)]:
        assert torch.equal(a, b)
    assert not torch.equal(first.train_x, other.train_x)


def test_moons_is_generated_from_the_seed() -> None:
    a = load_dataset("moons", seed=0)
    b = load_dataset("moons", seed=1)
    assert a.train_x.shape == b.train_x.shape == (600, 2)
    assert not torch.equal(a.train_x, b.train_x)


def test_result_is_cached_per_arguments() -> None:
    assert load_dataset("iris") is load_dataset("iris", split=(0.6, 0.2, 0.2), seed=0)
    assert load_dataset("iris", split=[0.6, 0.2, 0.2]) is load_dataset("iris")
    assert load_dataset("iris", seed=1) is not load_dataset("iris")


def test_to_returns_a_copy_on_the_device() -> None:
    data = load_dataset("iris")
    moved = data.to("cpu")
    assert moved is not data
    assert moved.train_x.device.type == "cpu"
    assert np.array_equal(moved.test_y.numpy(), data.test_y.numpy())
    assert moved.n_classes == data.n_classes and moved.name == data.name


def test_unknown_name_raises_value_error() -> None:
    with pytest.raises(ValueError, match="mnist"):
        load_dataset("mnist")


@pytest.mark.parametrize(
    "split", [(0.5, 0.5, 0.0), (0.6, 0.2, 0.1), (0.8, 0.2), (-0.2, 0.6, 0.6), (0.6, 0.2, 0.2, 0.0)]
)
def test_bad_split_raises_value_error(split: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="split"):
        load_dataset("iris", split=split)
