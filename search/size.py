"""The largest network (and the most epochs) a spec can ask for, checked before anything
trains.

A configuration that does not fit in memory kills its worker; a retried slot would then
take down every worker in turn. ``check_size`` refuses a spec whose largest configuration
has more than ``max_params`` parameters (``HPS_MAX_PARAMS``), naming the field to change.
Pure Python: the API calls it without importing torch.
"""

from __future__ import annotations

from search._params import LayersParam, param_values
from search.spec import ExperimentSpec

# (input features, outputs) of each built-in dataset; tests check them against models/.
DATASET_SHAPES: dict[str, tuple[int, int]] = {
    "digits": (64, 10),
    "iris": (4, 3),
    "wine": (13, 3),
    "breast_cancer": (30, 2),
    "moons": (2, 2),
    "diabetes": (10, 1),
}


class SpecTooLarge(ValueError):
    """The spec asks for more than this service allows (parameters, trials or epochs)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _too_many_params(field: str, n_params: int, max_params: int) -> SpecTooLarge:
    return SpecTooLarge(
        field,
        f"the largest network has {n_params:,} parameters, more than the "
        f"{max_params:,} this service allows (HPS_MAX_PARAMS)",
    )


def mlp_params(
    n_in: int,
    hidden: list[int],
    n_out: int,
    *,
    batch_norm: bool = False,
    residual: bool = False,
    every_block_projects: bool = False,
) -> int:
    """Weights and biases of an MLP with these layer sizes, with its batch norms' scales,
    shifts and running statistics (4 per unit) and its residual blocks' projections
    (``models._mlp.MLP``: layer 1 plain, then pairs; a pair whose output width differs
    from its input's projects the shortcut, without bias). ``every_block_projects``
    counts a projection in every block: a bound for widths searched over a range."""
    widths = [n_in, *hidden, n_out]
    n = sum(a * b + b for a, b in zip(widths, widths[1:], strict=False))
    if batch_norm:
        n += 4 * sum(hidden)
    if residual:
        for i in range(1, len(hidden) - 1, 2):  # block: hidden[i], hidden[i + 1]
            if every_block_projects or hidden[i - 1] != hidden[i + 1]:
                n += hidden[i - 1] * hidden[i + 1]
    return n


def _may_be_on(spec: ExperimentSpec, knob: str) -> bool:
    """Whether some trial of the spec can turn the boolean ``knob`` on."""
    p = spec.search.space.get(knob)
    return bool(getattr(spec.training, knob)) if p is None else True in param_values(p)


def largest_network(spec: ExperimentSpec, shape: tuple[int, int] | None = None) -> tuple[str, int]:
    """The parameter count of the largest network the spec can choose, and the field
    its hidden layers come from. ``shape``: (inputs, outputs) of an uploaded dataset."""
    n_in, n_out = shape or DATASET_SHAPES[spec.dataset.name or ""]
    options = {
        "batch_norm": _may_be_on(spec, "batch_norm"),
        "residual": _may_be_on(spec, "residual"),
    }
    p = spec.search.space.get("hidden")
    if not isinstance(p, LayersParam):
        return "training.hidden", mlp_params(n_in, list(spec.training.hidden), n_out, **options)
    if p.values is not None:
        return "search.space.hidden", max(mlp_params(n_in, h, n_out, **options) for h in p.values)
    assert p.depth is not None and p.units is not None
    widest = [p.units[1]] * p.depth[1]
    return "search.space.hidden", mlp_params(
        n_in, widest, n_out, every_block_projects=True, **options
    )


def max_epochs(spec: ExperimentSpec) -> int:
    """The most epochs a trial of the spec can run (Hyperband's ``max_resource``)."""
    p = spec.search.space.get("epochs")
    if p is None:
        return spec.training.epochs
    return max(int(v) for v in param_values(p))


def check_size(spec: ExperimentSpec, max_params: int, shape: tuple[int, int] | None = None) -> int:
    """The parameter count of the spec's largest network; raises SpecTooLarge over
    ``max_params``."""
    field, n = largest_network(spec, shape)
    if n > max_params:
        raise _too_many_params(field, n, max_params)
    return n


def check_budget(spec: ExperimentSpec, *, trials_cap: int | None, epochs_cap: int | None) -> None:
    """Raise SpecTooLarge naming the field when the spec asks for more trials than
    ``max_trials`` (HPS_MAX_TRIALS) or a trial for more epochs than ``max_epochs``
    (HPS_MAX_EPOCHS)."""
    if trials_cap is not None and spec.search.n_trials > trials_cap:
        raise SpecTooLarge(
            "search.n_trials",
            f"{spec.search.n_trials} trials asked for; this service allows at most "
            f"{trials_cap} per study (HPS_MAX_TRIALS)",
        )
    epochs = max_epochs(spec)
    if epochs_cap is not None and epochs > epochs_cap:
        field = "search.space.epochs" if "epochs" in spec.search.space else "training.epochs"
        raise SpecTooLarge(
            field,
            f"up to {epochs} epochs asked for; this service allows at most "
            f"{epochs_cap} per trial (HPS_MAX_EPOCHS)",
        )


__all__ = [
    "DATASET_SHAPES",
    "SpecTooLarge",
    "check_budget",
    "check_size",
    "largest_network",
    "max_epochs",
    "mlp_params",
]
