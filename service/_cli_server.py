"""Server-side ``hpsearch`` commands: ``serve``, ``worker`` and ``db upgrade``.

Thin wrappers over :mod:`service.runner`, which is imported inside each command so that the
client commands in ``service/cli.py`` never pay for torch, optuna, sqlalchemy or fastapi.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer

__all__ = ["register_server_commands"]

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: HPS_DATABASE_URL / settings)."),
]


def _runner_function(name: str) -> Any:
    """``service.runner.<name>``, imported now; a missing module is one ``error:`` line."""
    try:
        runner = importlib.import_module("service.runner")
    except ModuleNotFoundError as exc:
        typer.echo(f"error: server components are not available: {exc}", err=True)
        raise typer.Exit(1) from None
    return getattr(runner, name)


def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind (default: HPS_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="TCP port (default: HPS_PORT, 8000).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=0, help="Local worker processes to start (default: HPS_WORKERS, 2)."),
    ] = None,
) -> None:
    """Run the API server with local worker processes."""
    _runner_function("serve")(host=host, port=port, workers=workers)


def worker(
    db: DbOption = None,
    device: Annotated[
        str | None, typer.Option(help="auto | cpu | cuda | cuda:N (default: settings, auto).")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Torch CPU threads.")] = None,
    study: Annotated[int | None, typer.Option(min=1, help="Only work on this study id.")] = None,
    max_trials: Annotated[
        int | None, typer.Option(min=1, help="Exit after running this many trials.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Worker name shown in `workers`.")] = None,
) -> None:
    """Run one worker process that claims and trains trials from the database."""
    _runner_function("run_worker_cli")(
        db_url=db,
        device=device,
        threads=threads,
        study_id=study,
        max_trials=max_trials,
        name=name,
    )


def upgrade(db: DbOption = None) -> None:
    """Apply database migrations (hps_* tables) up to the latest revision."""
    _runner_function("upgrade_db")(db)


def check(db: DbOption = None) -> None:
    """Report trials whose Optuna record disagrees with hpsearch's (exit 1 if any)."""
    if _runner_function("check_db")(db):
        raise typer.Exit(1)


def register_server_commands(app: typer.Typer) -> None:
    """Add ``serve``, ``worker`` and the ``db`` group to the ``hpsearch`` app."""
    app.command(rich_help_panel="Server")(serve)
    app.command(rich_help_panel="Server")(worker)
    db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
    db_app.command()(upgrade)
    db_app.command()(check)
    app.add_typer(db_app, name="db", rich_help_panel="Server")
