"""Uploaded datasets: take an upload in (hash, read, check, store in one transaction), and
give workers the prepared ``models.Dataset`` a spec names, from the database alone.

Workers cache by hash: a process reads a dataset's bytes from the database once, keeps
the parsed table by sha256, and the prepared splits by (dataset, split, seed).
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from dataclasses import dataclass
from pathlib import PurePath
from typing import IO, Any

import pandas as pd
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from models import (
    Dataset,
    Table,
    TableError,
    TableSummary,
    builtin_table,
    check_table,
    detect_format,
    feature_kinds,
    load_dataset,
    make_dataset,
    read_table,
)
from search.spec import DATASET_NAME_PATTERN, DATASET_TASKS, SYNTHETIC, DatasetSpec, ExperimentSpec
from search.store import (
    DatasetRow,
    dataset_bytes,
    find_dataset,
    get_dataset,
    get_dataset_by_name,
    has_blob,
    insert_dataset,
    session_scope,
    with_retry,
)

_CHUNK = 1 << 20
_NAME = re.compile(DATASET_NAME_PATTERN)


class DatasetError(ValueError):
    """An upload that cannot be stored. ``status``: 415 (not CSV or Parquet), 409 (the
    name is taken) or 422 (anything else, naming ``field``, column and row)."""

    def __init__(self, message: str, *, field: str = "file", status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


@dataclass(frozen=True)
class Upload:
    file: IO[bytes]  # seekable; a spooled temporary file for a real upload
    filename: str
    target: str
    task: str | None = None
    impute: bool = False
    name: str | None = None


def ingest_dataset(
    *, session_factory: sessionmaker[Session], upload: Upload, owner: str | None = None
) -> tuple[DatasetRow, bool]:
    """Store an upload as ``owner``'s dataset, or return their dataset already made of the
    same bytes with the same target, task and imputation; (row, created). The bytes are
    stored once whoever uploads them. Raises ``DatasetError``."""
    sha256, size, head = _digest(upload.file)
    try:
        fmt = detect_format(head, upload.filename)
        frame = read_table(upload.file, fmt)
        summary = check_table(frame, upload.target, task=upload.task, impute=upload.impute)
    except TableError as exc:
        field = "target" if exc.column == upload.target else "file"
        raise DatasetError(
            exc.message, field=field, status=415 if exc.unsupported else 422
        ) from None
    name = dataset_name(upload.name, upload.filename)
    values: dict[str, Any] = {
        "name": name,
        "owner": owner,
        "sha256": sha256,
        "filename": (upload.filename or "upload")[:255],
        "format": fmt,
        "size_bytes": size,
        "target": upload.target,
        "task": summary.task,
        "task_inferred": summary.task_inferred,
        "impute": upload.impute,
        "n_rows": summary.n_rows,
        "n_columns": summary.n_columns,
        "summary": {
            "columns": summary.columns,
            "target": summary.target,
            "shape": _shape(summary),
        },
    }

    def store() -> tuple[DatasetRow, bool]:
        with session_scope(session_factory) as session:
            key = {"sha256": sha256, "target": upload.target, "task": summary.task}
            existing = find_dataset(session=session, owner=owner, impute=upload.impute, **key)
            if existing is not None:
                return existing, False
            if get_dataset_by_name(session=session, name=name, owner=owner) is not None:
                raise DatasetError(
                    f"a dataset named {name!r} already exists; upload with another name",
                    field="name",
                    status=409,
                )
            data = None if has_blob(session=session, sha256=sha256) else _read_all(upload.file)
            return insert_dataset(session=session, data=data, values=values), True

    try:
        return with_retry(store)
    except IntegrityError:  # a concurrent upload of the same bytes or name won
        return with_retry(store)


def _shape(summary: TableSummary) -> list[int]:
    """The network's inputs (numbers, plus one per category) and outputs, at most."""
    inputs = sum(1 if c["kind"] == "numeric" else c["distinct"] for c in summary.columns)
    outputs = len(summary.target.get("classes") or {}) or 1
    return [inputs, outputs]


def dataset_name(name: str | None, filename: str) -> str:
    """The name asked for, else the file name's stem made into a valid name."""
    if name is None:
        stem = PurePath(filename or "").stem
        name = re.sub(r"[^A-Za-z0-9_.\- ]+", "-", stem).strip(" -.")[:200] or "dataset"
        if not name[0].isalnum():
            name = "d" + name
    if not _NAME.fullmatch(name) or len(name) > 200:
        raise DatasetError(
            "a name is 1 to 200 letters, digits, spaces, '_', '.' or '-', starting with a "
            "letter or digit",
            field="name",
        )
    if name in DATASET_TASKS or name == SYNTHETIC or name.isdigit():
        raise DatasetError(
            f"{name!r} cannot name an upload: it is a built-in dataset or a number",
            field="name",
        )
    return name


def _digest(file: IO[bytes]) -> tuple[str, int, bytes]:
    """sha256, size and first bytes of a file, read in chunks."""
    file.seek(0)
    digest, size = hashlib.sha256(), 0
    head = file.read(8)
    file.seek(0)
    while chunk := file.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size, head


def _read_all(file: IO[bytes]) -> bytes:
    file.seek(0)
    return file.read()


# ---------------------------------------------------------------- workers

_lock = threading.Lock()
_FRAMES: dict[str, pd.DataFrame] = {}  # sha256 -> parsed table
_PREPARED: dict[tuple[Any, ...], Dataset] = {}  # (content key, split, seed) -> splits


def _content_key(row: DatasetRow) -> tuple[str, str, str, bool]:
    """What an uploaded dataset is made of: the same key gives the same table anywhere."""
    return (row.sha256, row.target, row.task, row.impute)


def uploaded_table(*, session_factory: sessionmaker[Session], dataset_id: int) -> Table:
    """An uploaded dataset's raw table; its bytes are read from the database once per
    process and the parsed table is kept by sha256."""
    table, _ = _uploaded(session_factory, dataset_id)
    return table


def _uploaded(
    session_factory: sessionmaker[Session], dataset_id: int
) -> tuple[Table, tuple[str, str, str, bool]]:
    with session_scope(session_factory) as session:
        row = get_dataset(session=session, dataset_id=dataset_id)
        if row is None:
            raise LookupError(f"dataset {dataset_id} no longer exists")
        key, fmt = _content_key(row), row.format
        with _lock:
            frame = _FRAMES.get(row.sha256)
        data = None if frame is not None else dataset_bytes(session=session, sha256=row.sha256)
    sha256, target, task, impute = key
    if frame is None:
        assert data is not None, f"dataset {dataset_id}: its bytes are missing"
        frame = read_table(io.BytesIO(data), fmt)
        with _lock:
            _FRAMES[sha256] = frame
    return Table(frame, target, task, feature_kinds(frame, target), impute), key


def spec_table(*, session_factory: sessionmaker[Session], dataset: DatasetSpec) -> Table:
    """The raw table a spec names (built-in or uploaded)."""
    if dataset.id is None:
        assert dataset.name is not None
        return builtin_table(dataset.name, dataset.seed)
    return uploaded_table(session_factory=session_factory, dataset_id=dataset.id)


def trial_dataset(
    *, session_factory: sessionmaker[Session], spec: ExperimentSpec
) -> Dataset | None:
    """What a trial of ``spec`` trains on: None for the synthetic model (no data)."""
    if spec.model == SYNTHETIC:
        return None
    return load_spec_dataset(session_factory=session_factory, dataset=spec.data)


def load_spec_dataset(*, session_factory: sessionmaker[Session], dataset: DatasetSpec) -> Dataset:
    """The prepared splits a spec names (kept per process by content, split and seed)."""
    split = tuple(dataset.split)
    if dataset.id is None:
        assert dataset.name is not None
        return load_dataset(dataset.name, split=split, seed=dataset.seed)
    table, content = _uploaded(session_factory, dataset.id)
    key = (content, split, dataset.seed)
    with _lock:
        prepared = _PREPARED.get(key)
    if prepared is None:
        prepared = make_dataset(dataset.label, table, split, dataset.seed)
        with _lock:
            _PREPARED[key] = prepared
    return prepared


__all__ = [
    "DatasetError",
    "Upload",
    "dataset_name",
    "ingest_dataset",
    "load_spec_dataset",
    "spec_table",
    "trial_dataset",
    "uploaded_table",
]
