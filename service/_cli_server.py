"""Server-side ``hpsearch`` commands: ``serve``, ``worker`` and ``db upgrade``.

Thin wrappers over :mod:`service.runner`, which is imported inside each command so that the
client commands in ``service/cli.py`` never pay for torch, optuna, sqlalchemy or fastapi.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer

from service._cli_common import BatchTrialsOption

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
    batch_trials: BatchTrialsOption = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Serve a non-loopback host with HPS_AUTH=off (anyone who can reach it can "
            "read and change everything; warned at every start).",
        ),
    ] = False,
) -> None:
    """Run the API server with local worker processes."""
    _runner_function("serve")(
        host=host,
        port=port,
        workers=workers,
        insecure=insecure,
        batch_trials=_batch_trials(batch_trials),
    )


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
    batch_trials: BatchTrialsOption = None,
    exit_when_idle: Annotated[
        bool,
        typer.Option(
            "--exit-when-idle",
            help="Exit 0 once the studies it serves (--study) have ended: nothing left to "
            "claim and no trial running that it might have to retry (batch jobs); stopped "
            "by SIGTERM before that, it hands its trial back and exits 143.",
        ),
    ] = False,
) -> None:
    """Run one worker process that claims and trains trials from the database."""
    _runner_function("run_worker_cli")(
        db_url=db,
        device=device,
        threads=threads,
        study_id=study,
        max_trials=max_trials,
        name=name,
        exit_when_idle=exit_when_idle,
        batch_trials=_batch_trials(batch_trials),
    )


def _batch_trials(value: str | None) -> str | None:
    """``--batch-trials`` checked: a bad value is a usage error naming it (exit 2)."""
    if value is None:
        return None
    from search._batch_option import parse_batch_trials

    try:
        return str(parse_batch_trials(value))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--batch-trials") from None


def upgrade(db: DbOption = None) -> None:
    """Apply database migrations (hps_* tables) up to the latest revision."""
    _runner_function("upgrade_db")(db)


def check(db: DbOption = None) -> None:
    """Report trials whose Optuna record disagrees with hpsearch's (exit 1 if any)."""
    if _runner_function("check_db")(db):
        raise typer.Exit(1)


def _keys_call(name: str, *args: Any, **kwargs: Any) -> Any:
    """``service.keys.<name>(...)``; a refused command is one ``error:`` line, exit 1."""
    keys = importlib.import_module("service.keys")
    try:
        return getattr(keys, name)(*args, **kwargs)
    except keys.KeyCommandError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _db_url(db: str | None) -> str:
    from service.settings import Settings

    return db or Settings().database_url


def keys_create(
    name: Annotated[str, typer.Argument(help="Key name: letters, digits, _ . - (1-64).")],
    user: Annotated[
        str | None,
        typer.Option(help="Whose key (default: NAME); a user's studies outlive their keys."),
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Sees and changes everything.")] = False,
    db: DbOption = None,
) -> None:
    """Make an API key and print its token (once: only its hash is stored)."""
    token = _keys_call("create_key", _db_url(db), name, user=user, admin=admin)
    typer.echo(token)
    typer.echo(
        f"key {name!r} for user {user or name!r}{' (admin)' if admin else ''}: the token above "
        "is shown only now; send it as 'Authorization: Bearer <token>' or set HPS_API_KEY",
        err=True,
    )


def keys_list(db: DbOption = None) -> None:
    """List keys: name, user, admin, created, last used (never the tokens)."""
    rows = _keys_call("list_keys", _db_url(db))
    typer.echo(f"{'name':<24} {'user':<24} {'admin':<5} {'created (UTC)':<19}  last used (UTC)")
    for k in rows:
        used = k.last_used_at.strftime("%Y-%m-%d %H:%M:%S") if k.last_used_at else "never"
        created = k.created_at.strftime("%Y-%m-%d %H:%M:%S")
        admin = "yes" if k.admin else "no"
        typer.echo(f"{k.name:<24} {k.user:<24} {admin:<5} {created:<19}  {used}")


def keys_revoke(
    name: Annotated[str, typer.Argument(help="The key's name.")], db: DbOption = None
) -> None:
    """Revoke a key: refused from the next request on; its browser sessions end."""
    _keys_call("revoke_key", _db_url(db), name)
    typer.echo(f"key {name!r} revoked")


def register_server_commands(app: typer.Typer) -> None:
    """Add ``serve``, ``worker`` and the ``db`` group to the ``hpsearch`` app."""
    app.command(rich_help_panel="Server")(serve)
    app.command(rich_help_panel="Server")(worker)
    db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
    db_app.command()(upgrade)
    db_app.command()(check)
    app.add_typer(db_app, name="db", rich_help_panel="Server")
    keys_app = typer.Typer(help="API keys (made on the server, with the database URL).")
    keys_app.command("create")(keys_create)
    keys_app.command("list")(keys_list)
    keys_app.command("revoke")(keys_revoke)
    app.add_typer(keys_app, name="keys", rich_help_panel="Server", no_args_is_help=True)
