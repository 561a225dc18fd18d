"""The dataset block of a built-in model's spec (pure pydantic): a built-in dataset by
name, or an uploaded one. Part of the spec contract, kept apart from ``search.spec`` for
size; import these names from ``search.spec``.
"""

from __future__ import annotations

import math

from pydantic import Field, field_validator, model_validator

from search._conv import SYNTHETIC
from search._params import Strict as _Strict
from search._synthetic import SYNTHETIC_TASK
from search.builtin_data import DATASET_TASKS

DATASET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$"
MAX_SEED = 2**32 - 1  # numpy/scikit-learn seeds are 32-bit


class DatasetSpec(_Strict):
    """A built-in dataset by name, or an uploaded one by name or ``id``, and its seeded
    train/dev/test split (fractions sum to 1). When a study is submitted the server checks
    that an uploaded dataset exists and stores both its id and its name. ``synthetic``
    is the synthetic model's placeholder: no data (``search._synthetic``)."""

    name: str | None = Field(None, min_length=1, max_length=200, pattern=DATASET_NAME_PATTERN)
    id: int | None = Field(None, ge=1, le=2**31 - 1)
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = Field(0, ge=0, le=MAX_SEED)

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f <= 0 for f in v):
            raise ValueError("every split fraction must be > 0")
        if not math.isclose(sum(v), 1.0, abs_tol=1e-6):
            raise ValueError(f"split fractions must sum to 1, got {sum(v):g}")
        return v

    @model_validator(mode="after")
    def _named(self) -> DatasetSpec:
        if self.name is None and self.id is None:
            raise ValueError("name a built-in dataset, or an uploaded one by name or id")
        if self.id is not None and (self.name in DATASET_TASKS or self.name == SYNTHETIC):
            raise ValueError(f"{self.name!r} is a built-in dataset; it has no id")
        return self

    @property
    def builtin(self) -> bool:
        return self.id is None and (self.name in DATASET_TASKS or self.name == SYNTHETIC)

    @property
    def task(self) -> str | None:
        """The built-in dataset's task; None for an uploaded one (the server knows it)."""
        if not self.builtin or self.name is None:
            return None
        return DATASET_TASKS.get(self.name, SYNTHETIC_TASK)

    @property
    def label(self) -> str:
        return self.name if self.name is not None else f"dataset {self.id}"


__all__ = ["DATASET_NAME_PATTERN", "DATASET_TASKS", "MAX_SEED", "DatasetSpec"]
