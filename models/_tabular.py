"""Users' tables: read CSV or Parquet (pandas, pyarrow), check that a table can be trained
on, and describe it.

Every problem is a ``TableError`` that names it, with the column and the data row (counted
from 1, the header not counted) where they are known. Nothing here fits anything: the
statistics that prepare inputs are fitted on the training split only (``models._prepare``).
"""

from __future__ import annotations

import codecs
import io
import math
from dataclasses import dataclass
from pathlib import PurePath
from typing import IO, Any

import numpy as np
import pandas as pd

FORMATS = ("csv", "parquet")
TASKS = ("classification", "regression")
MAX_CATEGORIES = 20  # distinct values of a text column that is one-hot encoded
MAX_CLASSES_IF_FLOAT = 20  # a float target with at most this many values is classification
MIN_ROWS = 10
MIN_CLASS_ROWS = 5  # rows of each class: enough for a stratified train/dev/test split
_CSV_SUFFIXES = ("", ".csv", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_PARQUET_MAGIC = b"PAR1"
_CHUNK = 1 << 20


class TableError(ValueError):
    """A table that cannot be trained on. ``unsupported``: not CSV or Parquet at all."""

    def __init__(
        self,
        message: str,
        *,
        column: str | None = None,
        row: int | None = None,
        unsupported: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.row = row
        self.unsupported = unsupported


def detect_format(head: bytes, filename: str) -> str:
    """ "csv" or "parquet" from the first bytes and the file name's suffix."""
    suffix = PurePath(filename or "").suffix.lower()
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    if suffix in _PARQUET_SUFFIXES:
        raise TableError(f"{filename} is not a Parquet file (no PAR1 header)", unsupported=True)
    if suffix not in _CSV_SUFFIXES:
        raise TableError(
            f"{filename}: not a CSV or Parquet file (expected .csv, .parquet or .pq)",
            unsupported=True,
        )
    return "csv"


def read_table(source: IO[bytes], fmt: str) -> pd.DataFrame:
    """The table in ``source`` (a seekable binary file), every column as pandas reads it."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    source.seek(0)
    if fmt == "parquet":
        try:
            frame = pd.read_parquet(source)
        except Exception as exc:  # pyarrow raises many kinds for a damaged file
            raise TableError(f"not a valid Parquet file: {_one_line(exc)}") from None
    else:
        _check_utf8(source)
        source.seek(0)
        try:
            frame = pd.read_csv(source, encoding="utf-8", skipinitialspace=True)
        except pd.errors.EmptyDataError:
            raise TableError("the file is empty") from None
        except (pd.errors.ParserError, ValueError) as exc:
            raise TableError(f"not a valid CSV file: {_one_line(exc)}") from None
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _check_utf8(source: IO[bytes]) -> None:
    """Stream through the file and name the line of the first byte that is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    while True:
        chunk = source.read(_CHUNK)
        try:
            decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            # exc.object: the bytes decoded, including any held over from the last chunk
            held = len(exc.object) - len(chunk)
            at = offset - held + max(exc.start, 0)
            line += chunk[: max(exc.start - held, 0)].count(b"\n")
            raise TableError(
                f"not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at offset {at} "
                f"(line {line}); save the file as UTF-8 CSV or as Parquet"
            ) from None
        if not chunk:
            return
        line += chunk.count(b"\n")
        offset += len(chunk)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


# ---------------------------------------------------------------- checking


def feature_kinds(frame: pd.DataFrame, target: str) -> dict[str, str]:
    """Every column but the target: "numeric" (numbers, not booleans) or "categorical"."""
    kinds = {}
    for name in frame.columns:
        if name == target:
            continue
        col = frame[name]
        numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        kinds[name] = "numeric" if numeric else "categorical"
    return kinds


def infer_task(target: pd.Series) -> str:
    """A float target with many values is regression; anything else is classification."""
    if pd.api.types.is_float_dtype(target) and target.nunique() > MAX_CLASSES_IF_FLOAT:
        return "regression"
    return "classification"


@dataclass(frozen=True)
class TableSummary:
    """What ``check_table`` found: the task (and whether it was inferred) and a JSON-ready
    description (rows, columns with their kinds and missing values, the target)."""

    task: str
    task_inferred: bool
    n_rows: int
    n_columns: int
    columns: list[dict[str, Any]]
    target: dict[str, Any]


def check_table(
    frame: pd.DataFrame, target: str, *, task: str | None = None, impute: bool = False
) -> TableSummary:
    """Check that ``frame`` can be trained on to predict ``target``; raise ``TableError``
    naming the first problem found."""
    if frame.shape[1] == 0:
        raise TableError("the file is empty")
    if len(frame) == 0:
        raise TableError("the file has a header but no data rows")
    if target not in frame.columns:
        raise TableError(
            f"target column {target!r} not found; the columns are {list(frame.columns)[:50]}",
            column=target,
        )
    if frame.shape[1] < 2:
        raise TableError("the file has no feature columns besides the target", column=target)
    duplicated = [c for c in frame.columns[frame.columns.duplicated()]]
    if duplicated:
        raise TableError(f"column {duplicated[0]!r} appears twice", column=duplicated[0])
    y = frame[target]
    _no_missing(y, target, "the target cannot be imputed")
    inferred = task is None
    task = infer_task(y) if task is None else task
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    target_info = _check_target(y, target, task)
    kinds = feature_kinds(frame, target)
    columns = [_check_column(frame[name], name, kind, impute) for name, kind in kinds.items()]
    return TableSummary(task, inferred, len(frame), frame.shape[1], columns, target_info)


def _check_target(y: pd.Series, name: str, task: str) -> dict[str, Any]:
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise TableError(
                f"target column {name!r} is not numeric; regression needs numbers",
                column=name,
            )
        values = y.to_numpy(dtype=np.float64)
        _finite(values, name)
        if len(values) < MIN_ROWS:
            raise TableError(f"{len(values)} rows: regression needs at least {MIN_ROWS}")
        return {
            "name": name,
            "task": task,
            "min": float(values.min()),
            "max": float(values.max()),
            "mean": float(values.mean()),
            "std": float(values.std()),
        }
    counts = y.map(label_value).value_counts()
    if len(counts) < 2:
        raise TableError(
            f"target column {name!r} has a single class ({label_value(counts.index[0])!r}); "
            "classification needs at least two",
            column=name,
        )
    label, fewest = label_value(counts.idxmin()), int(counts.min())
    if fewest < MIN_CLASS_ROWS:
        raise TableError(
            f"class {label!r} of target column {name!r} has {fewest} row(s), too few to split "
            f"into train, dev and test (each class needs at least {MIN_CLASS_ROWS})",
            column=name,
        )
    balance = {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))}
    return {"name": name, "task": task, "classes": balance}


def _check_column(col: pd.Series, name: str, kind: str, impute: bool) -> dict[str, Any]:
    missing = int(col.isna().sum())
    info: dict[str, Any] = {"name": name, "kind": kind, "dtype": str(col.dtype)}
    if missing == len(col):
        raise TableError(f"column {name!r} has no values", column=name)
    if missing and not impute:
        _no_missing(
            col,
            name,
            "upload with impute=true to fill missing values with the training set's "
            "median (numbers) or most frequent value (text)",
        )
    if kind == "numeric":
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        _finite(values[~np.isnan(values)], name, col)
    else:
        distinct = int(col.dropna().map(str).nunique())
        if distinct > MAX_CATEGORIES:
            raise TableError(
                f"column {name!r} is text with {distinct} distinct values (more than "
                f"{MAX_CATEGORIES}): too many to one-hot encode; drop it or group its values",
                column=name,
            )
        info["distinct"] = distinct
    info["missing"] = missing
    return info


def _no_missing(col: pd.Series, name: str, hint: str) -> None:
    mask = col.isna().to_numpy()
    if mask.any():
        row = int(np.argmax(mask)) + 1
        raise TableError(
            f"column {name!r} has {int(mask.sum())} missing value(s), the first in row {row}; "
            + hint,
            column=name,
            row=row,
        )


def _finite(values: np.ndarray, name: str, col: pd.Series | None = None) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row = None
        if col is not None:
            full = col.to_numpy(dtype=np.float64, na_value=0.0)
            row = int(np.argmax(~np.isfinite(full))) + 1
        else:
            row = int(np.argmax(bad)) + 1
        raise TableError(
            f"column {name!r} has an infinite value in row {row}", column=name, row=row
        )


def label_value(v: Any) -> Any:
    """A class label as JSON keeps it: numpy scalars become Python ones; whole floats stay
    floats (``1.0``), text stays text."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def table_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as CSV bytes (for tests and examples)."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")


__all__ = [
    "FORMATS",
    "MAX_CATEGORIES",
    "MIN_CLASS_ROWS",
    "MIN_ROWS",
    "TASKS",
    "TableError",
    "TableSummary",
    "check_table",
    "detect_format",
    "feature_kinds",
    "infer_task",
    "label_value",
    "read_table",
    "table_bytes",
]
