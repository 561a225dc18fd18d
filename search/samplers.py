"""Samplers. A random draw is keyed on (seed, k, parameter name), so budget slot k's
parameters depend only on (seed, k): any number of workers, and any number of retries,
yield the same set. Workers draw random, grid and quasi-random (Sobol) parameters themselves
(``search.slots``); Optuna's sampler only chooses for adaptive studies (TPE, CMA-ES,
Gaussian process)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, CmaEsSampler, GPSampler, RandomSampler, TPESampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState


def derive_seed(*parts: object) -> int:
    """A stable 32-bit seed from any parts (unlike hash(), the same in every process)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def keyed_draw(seed: int, key: int, param_name: str, distribution: BaseDistribution) -> Any:
    """A uniform (log-uniform for log ranges) draw that depends only on the arguments."""
    sampler = RandomSampler(seed=derive_seed(seed, key, param_name))
    # RandomSampler.sample_independent reads neither the study nor the trial.
    return sampler.sample_independent(None, None, param_name, distribution)  # type: ignore[arg-type]


class TrialKeyedRandomSampler(BaseSampler):
    """Independent uniform sampling (log-uniform for log ranges) whose draw for a
    parameter depends only on (seed, trial number, parameter name)."""

    def __init__(self, seed: int = 0) -> None:
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self._seed = seed

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return keyed_draw(self._seed, trial.number, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        return None


def make_sampler(sampler: str, *, seed: int, worker_key: str = "") -> BaseSampler:
    """The Optuna sampler for a spec. Random, grid and qmc parameters are drawn by the
    worker from the budget slot (the sampler is never asked). The adaptive ones are seeded
    per worker so concurrent workers do not propose identical points; CMA-ES and the
    Gaussian process model the parameters present in every trial and draw the others
    (categorical for CMA-ES, conditional layer sizes) at random, as documented."""
    if sampler in ("random", "grid", "qmc"):
        return TrialKeyedRandomSampler(seed)
    worker_seed = derive_seed(seed, worker_key)
    if sampler == "tpe":
        return TPESampler(seed=worker_seed)
    fallback = RandomSampler(seed=derive_seed(worker_seed, "independent"))
    if sampler == "cmaes":
        return CmaEsSampler(
            seed=worker_seed, independent_sampler=fallback, warn_independent_sampling=False
        )
    if sampler == "gp":
        return GPSampler(
            seed=worker_seed, independent_sampler=fallback, warn_independent_sampling=False
        )
    raise ValueError(f"unknown sampler {sampler!r}")


__all__ = ["TrialKeyedRandomSampler", "derive_seed", "keyed_draw", "make_sampler"]
