"""``hpsearch gradcheck``: check backprop on real configurations of a spec's space.

Configuration k is the one budget slot k would train (``search.slots``: random draws keyed
on (seed, k), the k-th grid or Sobol point); an adaptive sampler's spec gets the random
draws its first trials would get before it adapts. Each is built for the spec's dataset
(its shape and task) with dropout off and checked by ``models.gradcheck``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models import Dataset, load_dataset
from models.gradcheck import TensorCheck, check_config
from search.slots import SlotTrial, is_adaptive, slot_params
from search.space import suggest
from search.spec import ExperimentSpec
from search.trial_runner import build_config


@dataclass(frozen=True)
class ConfigurationCheck:
    slot: int
    knobs: dict[str, Any]
    tensors: list[TensorCheck]

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tensors)


def configuration_knobs(spec: ExperimentSpec, slot: int) -> dict[str, Any]:
    """The knobs slot ``slot`` of the spec would train with."""
    if is_adaptive(spec):
        trial = SlotTrial(seed=spec.search.seed, slot=slot)
        return suggest(trial, spec.search.space)
    return slot_params(spec, slot).knobs


def check_spec(
    spec: ExperimentSpec, trials: int, *, batch_size: int = 8
) -> list[ConfigurationCheck]:
    """Gradient checks of the spec's first ``trials`` configurations (fewer for a smaller
    grid). Raises ValueError for a dataset that is not built in, or the synthetic model."""
    if spec.model == "synthetic":
        raise ValueError("model: synthetic has no network to check")
    if not spec.data.builtin:
        raise ValueError(
            f"dataset: gradcheck needs a built-in dataset; {spec.data.label} is uploaded"
        )
    data: Dataset = load_dataset(spec.data.name or "", split=spec.data.split)
    checks = []
    for slot in range(min(trials, spec.search.n_trials)):
        knobs = configuration_knobs(spec, slot)
        config = build_config(spec, knobs, slot=slot, device="cpu")
        tensors = check_config(config, data, batch_size=batch_size, seed=slot)
        checks.append(ConfigurationCheck(slot, knobs, tensors))
    return checks


__all__ = ["ConfigurationCheck", "check_spec", "configuration_knobs"]
