"""Spec rules of ``model: external``: a study of the user's own training code.

Its trials are claimed and reported over the REST trial API (``search.remote``) by the
user's code, the light client or ``hpsearch agent``; built-in workers never claim them and
nothing of the spec is ever executed. So it has no dataset and no training block; its
search space names any parameters (float/int with ``log``, ``values``, categorical,
layers) and its objective any metric the code reports, with the direction said outright.

The spec's models validate with the rules of the model being validated: ``ExperimentSpec``
sets ``SPEC_MODEL`` around its own validation, so a field deep in the spec (a parameter
name, the objective's metric) is checked by the right rules and its error keeps its place.
Import these names from ``search.spec``.
"""

from __future__ import annotations

import re
from contextvars import ContextVar

EXTERNAL = "external"
# The model of the spec being validated (None outside ExperimentSpec: built-in rules).
SPEC_MODEL: ContextVar[str | None] = ContextVar("hps_spec_model", default=None)
# A parameter or metric name of the user's code: an identifier (also the agent's {name}).
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
DEFAULT_LOSS_METRIC = "train_loss"
EXTERNAL_TASK = "external"  # hps_studies.task of such a study: no classes, no target


def validating_external() -> bool:
    return SPEC_MODEL.get() == EXTERNAL


# Not a metric's name: a report's epoch is stored beside its metrics under this one.
RESERVED_METRIC = "epoch"


def check_name(kind: str, name: str) -> None:
    """Raise ValueError unless ``name`` is a legal parameter or metric name."""
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(
            f"{kind} name {name!r} must be 1-64 letters, digits or '_', not starting with a digit"
        )
    if kind == "metric" and name == RESERVED_METRIC:
        raise ValueError(f"{RESERVED_METRIC!r} is a report's own field, not a metric name")


# What model external refuses, by field, and why.
EXTERNAL_PARTS = {
    "dataset": "model external trains your own code on your own data: leave dataset out",
    "training": "model external runs your own training code: leave training out, and put "
    "any setting you want searched in search.space",
}


__all__ = [
    "DEFAULT_LOSS_METRIC",
    "EXTERNAL",
    "EXTERNAL_PARTS",
    "EXTERNAL_TASK",
    "NAME_PATTERN",
    "RESERVED_METRIC",
    "SPEC_MODEL",
    "check_name",
    "validating_external",
]
