"""Random search is log-uniform and keyed on (seed, trial number); grids are products."""

from __future__ import annotations

import itertools
import math

import numpy as np
import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from scipy import stats

from search.samplers import TrialKeyedRandomSampler
from search.slots import from_unit, slot_params
from search.space import grid_point, grid_size, suggest
from search.spec import ExperimentSpec


def _lrs(n: int, seed: int) -> list[float]:
    study = optuna.create_study(sampler=TrialKeyedRandomSampler(seed))
    study.optimize(lambda t: t.suggest_float("lr", 1e-5, 1.0, log=True), n_trials=n)
    return [t.params["lr"] for t in study.trials]


def test_learning_rates_are_uniform_in_log10() -> None:
    lrs = np.array(_lrs(2000, seed=0))
    assert lrs.min() >= 1e-5 and lrs.max() <= 1.0
    exponents = np.log10(lrs)
    # Kolmogorov-Smirnov against U(-5, 0): uniform in log10, not in lr.
    ks = stats.kstest(exponents, stats.uniform(loc=-5, scale=5).cdf)
    assert ks.pvalue > 0.001, ks
    # Each of the five decades gets about a fifth (400 +- ~4 sigma).
    counts, _ = np.histogram(exponents, bins=[-5, -4, -3, -2, -1, 0])
    assert all(320 <= c <= 480 for c in counts), counts
    # A linear sampler would put ~90% of draws in the top decade; this one does not.
    assert (lrs > 0.1).mean() < 0.3


def test_trial_k_depends_only_on_seed_and_k() -> None:
    assert _lrs(20, seed=7) == _lrs(20, seed=7)
    assert _lrs(20, seed=7) != _lrs(20, seed=8)
    assert _lrs(5, seed=7) == _lrs(20, seed=7)[:5]


def grid_points(space: dict) -> list[dict]:
    return [grid_point(space, k) for k in range(grid_size(space))]


def _spec(space: dict, sampler: str = "grid") -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {"name": "g", "dataset": "iris", "search": {"sampler": sampler, "space": space}}
    )


def test_grid_is_exactly_the_cartesian_product() -> None:
    spec = _spec(
        {
            "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True, "points": 3},
            "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
            "hidden": {"type": "layers", "values": [[32], [64, 32]]},
        }
    )
    points = grid_points(spec.search.space)
    lrs = [1e-3, 1e-2, 1e-1]
    expected = {
        (lr, act, hid) for lr, act, hid in itertools.product(lrs, ["relu", "tanh"], ["32", "64-32"])
    }
    got = {(p["lr"], p["activation"], p["hidden"]) for p in points}
    assert len(points) == 12 == spec.search.n_trials
    assert {(round(math.log10(a), 9), b, c) for a, b, c in got} == {
        (round(math.log10(a), 9), b, c) for a, b, c in expected
    }


def test_int_points_are_deduplicated_and_spec_counts_them() -> None:
    spec = _spec({"batch_size": {"type": "int", "low": 1, "high": 3, "points": 5}})
    assert [p["batch_size"] for p in grid_points(spec.search.space)] == [1, 2, 3]
    assert spec.search.n_trials == 3


def test_suggest_decodes_layers() -> None:
    spec = _spec(
        {"hidden": {"type": "layers", "depth": [1, 3], "units": [8, 512]}}, sampler="random"
    )
    study = optuna.create_study(sampler=TrialKeyedRandomSampler(0))
    for _ in range(30):
        trial = study.ask()
        knobs = suggest(trial, spec.search.space)
        assert 1 <= len(knobs["hidden"]) <= 3
        assert all(8 <= u <= 512 for u in knobs["hidden"])
        assert trial.params["hidden.depth"] == len(knobs["hidden"])
        study.tell(trial, 0.0)


QMC_SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
    "keep_prob": {"type": "float", "low": 0.5, "high": 1.0},
    "activation": {"type": "categorical", "choices": ["relu", "tanh", "sigmoid", "leaky_relu"]},
    "hidden": {"type": "layers", "depth": [1, 2], "units": [8, 64]},
}


def _qmc(seed: int, slots: int) -> list[dict]:
    spec = ExperimentSpec.model_validate(
        {
            "name": "q",
            "dataset": "iris",
            "search": {"sampler": "qmc", "seed": seed, "space": QMC_SPACE},
        }
    )
    return [slot_params(spec, k).knobs for k in range(slots)]


def test_qmc_slots_cover_every_range_evenly() -> None:
    """The first 16 Sobol points put exactly one value in each sixteenth of every range
    (log range for lr), and split depth and activation exactly evenly: random draws do not."""
    knobs = _qmc(seed=5, slots=16)
    lr_bins = sorted(int((math.log10(k["lr"]) + 4) / 4 * 16) for k in knobs)
    kp_bins = sorted(int((k["keep_prob"] - 0.5) / 0.5 * 16) for k in knobs)
    assert lr_bins == list(range(16)) and kp_bins == list(range(16))
    depths = [len(k["hidden"]) for k in knobs]
    assert depths.count(1) == depths.count(2) == 8
    assert {
        a: [k["activation"] for k in knobs].count(a) for a in QMC_SPACE["activation"]["choices"]
    } == {a: 4 for a in QMC_SPACE["activation"]["choices"]}
    assert all(8 <= u <= 64 for k in knobs for u in k["hidden"])
    random = ExperimentSpec.model_validate(
        {"name": "r", "dataset": "iris", "search": {"seed": 5, "space": QMC_SPACE}}
    )
    random_bins = {
        int((slot_params(random, k).knobs["keep_prob"] - 0.5) / 0.5 * 16) for k in range(16)
    }
    assert len(random_bins) < 16  # the contrast: independent draws collide


def test_qmc_slot_k_depends_only_on_seed_and_k() -> None:
    assert _qmc(seed=5, slots=8) == _qmc(seed=5, slots=8)
    assert _qmc(seed=5, slots=4) == _qmc(seed=5, slots=8)[:4]
    assert _qmc(seed=5, slots=8) != _qmc(seed=6, slots=8)


def test_qmc_maps_the_ends_of_int_and_log_ranges_inside_them() -> None:
    ints = IntDistribution(1, 3)
    assert [from_unit(u, ints) for u in (0.0, 0.33, 0.34, 0.66, 0.67, 1.0)] == [1, 1, 2, 2, 3, 3]
    logs = FloatDistribution(1e-3, 1.0, log=True)
    assert 1e-3 <= from_unit(0.0, logs) < 1.0001e-3 and 0.9999 < from_unit(1.0, logs) <= 1.0
    assert math.isclose(from_unit(0.5, logs), math.sqrt(1e-3))
