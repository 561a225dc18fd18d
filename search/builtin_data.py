"""The built-in datasets: one table (torch-free). The spec's dataset names and tasks
(``search._dataset``), which of them are images and their shape (the CNN's checks in
``search._conv``), and ``models``' registry (``models._datasets``, which keeps a loader per
row and refuses to import without one) all come from it."""

from __future__ import annotations

from typing import Literal, NamedTuple

Task = Literal["classification", "regression"]


class BuiltinDataset(NamedTuple):
    task: Task
    # (channels, height, width) of an image dataset, whose features are its pixels in
    # row-major order; None: a table of features
    image_shape: tuple[int, int, int] | None
    about: str


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "digits": BuiltinDataset("classification", (1, 8, 8), "8x8 handwritten digits, 10 classes"),
    "iris": BuiltinDataset("classification", None, "iris flowers, 3 classes"),
    "wine": BuiltinDataset("classification", None, "wine cultivars, 3 classes"),
    "breast_cancer": BuiltinDataset("classification", None, "tumours, benign or malignant"),
    "moons": BuiltinDataset("classification", None, "two interleaved half circles, noisy"),
    "diabetes": BuiltinDataset("regression", None, "disease progression after a year"),
}
DATASET_TASKS: dict[str, Task] = {name: d.task for name, d in BUILTIN_DATASETS.items()}
IMAGE_SHAPES: dict[str, tuple[int, int, int]] = {
    name: d.image_shape for name, d in BUILTIN_DATASETS.items() if d.image_shape is not None
}

__all__ = ["BUILTIN_DATASETS", "DATASET_TASKS", "IMAGE_SHAPES", "BuiltinDataset", "Task"]
