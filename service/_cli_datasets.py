"""``hpsearch datasets upload|list|show|delete`` and ``hpsearch download``: client commands
over HTTP (nothing heavy imported)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from service._cli_common import DEFAULT_URL, UrlOption, connect, console, fail, fmt, print_table

__all__ = ["register_dataset_commands"]

DatasetId = Annotated[int, typer.Argument(help="Dataset id.", min=1)]

datasets_app = typer.Typer(
    help="Your own tables to search on: upload CSV or Parquet, list, show, delete.",
    no_args_is_help=True,
)


def _size(n: Any) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def _task(ds: dict[str, Any]) -> str:
    return f"{ds.get('task')}{' (inferred)' if ds.get('task_inferred') else ''}"


@datasets_app.command()
def upload(
    file: Annotated[Path, typer.Argument(help="CSV (UTF-8, with a header) or Parquet file.")],
    target: Annotated[str, typer.Option("--target", help="The column to predict.")],
    task: Annotated[
        str | None,
        typer.Option("--task", help="classification | regression (inferred when omitted)."),
    ] = None,
    impute: Annotated[
        bool,
        typer.Option(
            "--impute",
            help="Fill missing values with training-set medians / most frequent values.",
        ),
    ] = False,
    name: Annotated[str | None, typer.Option("--name", help="Default: the file's stem.")] = None,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Upload a table; a spec then names it by name or id (`dataset: NAME`)."""
    if task is not None and task not in ("classification", "regression"):
        fail(f"--task must be classification or regression, got {task!r}", 2)
    if not file.is_file():
        fail(f"file not found: {file}", 2)
    with connect(url) as client:
        ds, created = client.upload_dataset(
            file, target=target, task=task, impute=impute, name=name
        )
    verb = "uploaded" if created else "already uploaded as"
    typer.echo(
        f"{verb} dataset {ds.get('id')} ({ds.get('name')}): {ds.get('n_rows')} rows, "
        f"{ds.get('n_columns')} columns, target {ds.get('target')}, {_task(ds)}"
    )


@datasets_app.command("list")
def list_datasets(
    offset: Annotated[int, typer.Option(min=0, help="Skip this many datasets.")] = 0,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 50,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """List uploaded datasets, newest first."""
    with connect(url) as client:
        page = client.list_datasets(offset=offset, limit=limit)
    rows: list[dict[str, Any]] = page.get("data") or []
    table = Table(caption=f"{len(rows)} of {page.get('count', len(rows))} datasets")
    table.box = box.SIMPLE_HEAD
    keys = ("id", "name", "task", "target", "rows", "columns", "size", "created")
    for key in keys:
        table.add_column(
            key, justify="right" if key in ("id", "rows", "columns", "size") else "left"
        )
    for ds in rows:
        cells = [ds.get("id"), ds.get("name"), _task(ds), ds.get("target"), ds.get("n_rows")]
        cells += [ds.get("n_columns"), _size(ds.get("size_bytes")), ds.get("created_at")]
        table.add_row(*(Text(fmt(c)) for c in cells))
    print_table(console(), table)


@datasets_app.command()
def show(dataset_id: DatasetId, url: UrlOption = DEFAULT_URL) -> None:
    """One dataset: rows, columns with their types and missing values, the target."""
    with connect(url) as client:
        ds = client.get_dataset(dataset_id)
    target = ds.get("target_summary") or {}
    lines = [
        f"dataset {ds.get('id')} ({ds.get('name')}): {ds.get('filename')}, {ds.get('format')}, "
        f"{_size(ds.get('size_bytes'))}, sha256 {str(ds.get('sha256'))[:12]}",
        f"{ds.get('n_rows')} rows, {ds.get('n_columns')} columns; target {ds.get('target')}, "
        f"{_task(ds)}{'; missing values imputed' if ds.get('impute') else ''}",
    ]
    if "classes" in target:
        balance = ", ".join(f"{k}: {v}" for k, v in (target.get("classes") or {}).items())
        lines.append(f"classes: {balance}")
    else:
        lines.append(
            f"target range {fmt(target.get('min'))} to {fmt(target.get('max'))}, "
            f"mean {fmt(target.get('mean'))}, std {fmt(target.get('std'))}"
        )
    typer.echo("\n".join(lines))
    table = Table(box=box.SIMPLE_HEAD)
    for key in ("column", "kind", "dtype", "missing", "distinct"):
        table.add_column(key, justify="right" if key in ("missing", "distinct") else "left")
    for col in ds.get("columns") or []:
        cells = [col.get(k) for k in ("name", "kind", "dtype", "missing", "distinct")]
        table.add_row(*(Text(fmt(c)) for c in cells))
    print_table(console(), table)


@datasets_app.command()
def delete(dataset_id: DatasetId, url: UrlOption = DEFAULT_URL) -> None:
    """Delete a dataset no study needs any more."""
    with connect(url) as client:
        client.delete_dataset(dataset_id)
    typer.echo(f"deleted dataset {dataset_id}")


def download(
    study_id: Annotated[int, typer.Argument(help="Study id.", min=1)],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Where to save it (default: the server's name)."),
    ] = None,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Save a study's best trained model (weights, preparation, labels, metrics) to a file;
    load it with `models.load_model(path)`."""
    with connect(url) as client:
        path = client.download_model(study_id, output)
    typer.echo(f"saved study {study_id}'s best model to {path}")


def register_dataset_commands(app: typer.Typer) -> None:
    """Add the ``datasets`` group and ``download`` to the ``hpsearch`` app."""
    app.add_typer(datasets_app, name="datasets")
    app.command()(download)
