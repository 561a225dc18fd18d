"""How reads name a study of the user's own code (``model: external``): it has no dataset,
so pages and the CLI show "your code" where a built-in study shows its dataset. Standard
library only: the CLI uses it too (a test checks ``EXTERNAL_TASK`` against search.spec's).
"""

from __future__ import annotations

from typing import Any

EXTERNAL_TASK = "external"  # hps_studies.task (and StudyPublic.task) of such a study
OWN_CODE = "your code"


def _field(study: Any, name: str) -> Any:
    return study.get(name) if isinstance(study, dict) else getattr(study, name, None)


def is_own_code(study: Any) -> bool:
    """``study`` (a row, a StudyPublic or its JSON) trains the user's own code."""
    return _field(study, "task") == EXTERNAL_TASK


def dataset_label(study: Any) -> str:
    """What a study is trained on, as reads show it: its dataset, or "your code"."""
    return OWN_CODE if is_own_code(study) else str(_field(study, "dataset") or "")


__all__ = ["EXTERNAL_TASK", "OWN_CODE", "dataset_label", "is_own_code"]
