"""Helpers shared by the ``hpsearch`` client commands: one-line errors, a connected client,
tables that keep their natural width off a terminal, compact cell formatting."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from service.client import ClientError, HpsClient

BatchTrialsOption = Annotated[
    str | None,
    typer.Option(
        "--batch-trials",
        help="Trials of one MLP or CNN study a worker trains together as one stacked model: "
        "1..256 or auto (default: HPS_BATCH_TRIALS, 1).",
    ),
]

DEFAULT_URL = "http://127.0.0.1:8000"
UrlOption = Annotated[
    str,
    typer.Option("--url", envvar="HPS_URL", show_envvar=True, help="hpsearch server base URL."),
]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one ``error:`` line on stderr and exit with ``code``."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)


@contextmanager
def connect(url: str) -> Iterator[HpsClient]:
    """An open client sending the key in ``HPS_API_KEY`` (if set); any
    :class:`ClientError` becomes one error line and exit 1."""
    try:
        with HpsClient(url, api_key=os.environ.get("HPS_API_KEY") or None) as client:
            yield client
    except ClientError as exc:
        fail(str(exc), 1)


def console() -> Console:
    # Built per command so it writes to whatever sys.stdout is now (CliRunner swaps it).
    return Console(highlight=False)


def print_table(console: Console, table: Table) -> None:
    """Print a table; when stdout is not a terminal (pipes, CI logs) use its natural width
    instead of cutting cells to rich's 80-column default."""
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update(max_width=1000), table).maximum
    width = console.width
    console.width = max(width, natural)
    try:
        console.print(table)
    finally:
        console.width = width


def fmt(value: Any) -> str:
    """A compact rendering of a param/metric value for tables and CSV."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return "-".join(fmt(item) for item in value)
    return str(value)


__all__ = ["DEFAULT_URL", "UrlOption", "connect", "console", "fail", "fmt", "print_table"]
