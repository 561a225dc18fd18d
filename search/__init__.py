"""Search: turns an ExperimentSpec into an Optuna study and runs its trials.

Only ``search.spec`` is imported eagerly (it needs neither torch nor optuna); the worker,
samplers and pruners live in submodules imported where they are used.
"""

from __future__ import annotations

from search.spec import ExperimentSpec

__all__ = ["ExperimentSpec"]
