"""Pruners: the divergence rule, and the factory that builds a spec's pruner."""

from __future__ import annotations

from optuna.pruners import (
    BasePruner,
    HyperbandPruner,
    MedianPruner,
    PercentilePruner,
    SuccessiveHalvingPruner,
)

from search.pruners._divergence import DivergencePruner, is_diverged
from search.spec import PruningSpec

# The spec's pruners that read nothing of the study but its COMPLETE trials (and the judged
# trial's own values): ``search.judging.CompletedJudge`` judges them without reading the
# running trials back from Optuna's tables.
READS_COMPLETED_ONLY = frozenset({"median", "percentile"})


def reads_running_values(pruner: str) -> bool:
    """Whether the spec's pruner reads a running trial's values from Optuna's tables
    (successive halving, Hyperband: through ``optuna.Trial``), so that each value must be
    there as it is judged. Otherwise a trial's values reach Optuna with its end, in the
    transaction that completes it, which is when any other trial's pruner may read them."""
    return pruner != "none" and pruner not in READS_COMPLETED_ONLY


def make_pruner(pruning: PruningSpec, *, epochs: int | None) -> DivergencePruner:
    """The divergence rule wrapped around the spec's Optuna pruner (if any). ``epochs``:
    the most a trial runs (Hyperband's resource), None when unknown (the user's own code:
    Hyperband estimates it from the first trials)."""
    warmup = pruning.warmup_epochs
    wrapped: BasePruner | None = {
        "none": None,
        "median": MedianPruner(n_startup_trials=3, n_warmup_steps=warmup),
        "percentile": PercentilePruner(25.0, n_startup_trials=3, n_warmup_steps=warmup),
        "successive_halving": SuccessiveHalvingPruner(),
        "hyperband": HyperbandPruner(
            min_resource=1, max_resource="auto" if epochs is None else max(epochs, 1)
        ),
    }[pruning.pruner]
    return DivergencePruner(pruning.divergence_factor, wrapped)


__all__ = [
    "READS_COMPLETED_ONLY",
    "DivergencePruner",
    "is_diverged",
    "make_pruner",
    "reads_running_values",
]
