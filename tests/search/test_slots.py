"""A slot's parameters are a pure function of (spec, k): the k-th grid point, or random
draws keyed on (seed, k) that match what the seeded sampler gives trial k."""

from __future__ import annotations

import itertools

import optuna
import pytest

from search.samplers import TrialKeyedRandomSampler
from search.size import SpecTooLarge, check_size, max_epochs
from search.slots import slot_params
from search.space import grid_point, grid_size, suggest
from search.spec import ExperimentSpec

SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
    "batch_size": {"type": "int", "low": 8, "high": 256, "log": True},
    "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
    "hidden": {"type": "layers", "depth": [1, 3], "units": [4, 64]},
}


def _spec(sampler: str, space: dict, **extra: object) -> ExperimentSpec:
    search = {"sampler": sampler, "seed": 5, "space": space}
    return ExperimentSpec.model_validate({"name": "s", "dataset": "iris", "search": search} | extra)


def test_random_slot_k_matches_the_seeded_sampler_and_repeats() -> None:
    spec = _spec("random", SPACE)
    study = optuna.create_study(sampler=TrialKeyedRandomSampler(5))
    for k in range(8):
        trial = study.ask()
        expected = suggest(trial, spec.search.space)
        study.tell(trial, 0.0)
        got = slot_params(spec, k)
        assert got.knobs == expected == slot_params(spec, k).knobs
        assert got.params == trial.params
        assert set(got.distributions) == set(trial.distributions)


def test_grid_slot_k_is_the_kth_point_of_the_product() -> None:
    space = {
        "lr": {"type": "float", "values": [0.1, 0.01, 0.001]},
        "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
        "hidden": {"type": "layers", "values": [[8], [16, 8]]},
    }
    spec = _spec("grid", space)
    product = list(itertools.product([0.1, 0.01, 0.001], ["relu", "tanh"], ["8", "16-8"]))
    assert grid_size(spec.search.space) == 12 == spec.search.n_trials
    for k, (lr, act, hidden) in enumerate(product):
        assert grid_point(spec.search.space, k) == {"lr": lr, "activation": act, "hidden": hidden}
        knobs = slot_params(spec, k).knobs
        assert knobs == {"lr": lr, "activation": act, "hidden": [int(u) for u in hidden.split("-")]}
    with pytest.raises(ValueError):
        grid_point(spec.search.space, 12)


def test_adaptive_samplers_have_no_slot_parameters() -> None:
    with pytest.raises(ValueError, match="adaptively"):
        slot_params(_spec("tpe", SPACE), 0)


def test_largest_network_is_refused_naming_the_field() -> None:
    big = {"hidden": {"type": "layers", "depth": [1, 16], "units": [4, 65536]}}
    with pytest.raises(SpecTooLarge, match="search.space.hidden") as err:
        check_size(_spec("random", big), 50_000_000)
    assert err.value.field == "search.space.hidden"
    wide = _spec("random", {}, training={"hidden": [65536, 65536]})
    with pytest.raises(SpecTooLarge, match="training.hidden"):
        check_size(wide, 50_000_000)
    # iris: 4 inputs, 3 classes; at most 3 hidden layers of 64 units.
    largest = (4 * 64 + 64) + 2 * (64 * 64 + 64) + (64 * 3 + 3)
    assert check_size(_spec("random", SPACE), 50_000_000) == largest


def test_hyperband_sees_the_most_epochs_the_space_allows() -> None:
    assert max_epochs(_spec("random", {})) == 20
    searched = {"epochs": {"type": "int", "low": 5, "high": 80}}
    assert max_epochs(_spec("random", searched, training={"epochs": 10})) == 80
    chosen = {"epochs": {"type": "categorical", "choices": [3, 30, 9]}}
    assert max_epochs(_spec("random", chosen)) == 30
