"""The ``hpsearch`` command line.

Client commands (submit, list, status, watch, leaderboard, cancel, publish, workers, example)
talk to a running server over HTTP through :class:`service.client.HpsClient` (sending the key in
``HPS_API_KEY``) and import nothing heavy, so they start fast. Server-side commands (serve,
worker, db upgrade, keys) live in ``service/_cli_server.py``, ``slurm`` in
``service/_cli_slurm.py``, ``k8s render`` (a client command) in ``service/_cli_k8s.py``, and
the local ``gradcheck`` in ``service/_cli_gradcheck.py``;
they import the heavy machinery inside the command.

Errors are one line on stderr prefixed ``error:``; exit 1 for server/HTTP errors, 2 for
usage and spec-file errors.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from service._cli_agent import register_agent_command
from service._cli_boards import held_out_of, leaderboard_table, write_leaderboard_csv
from service._cli_common import DEFAULT_URL, UrlOption, connect, console, fail, fmt, print_table
from service._cli_datasets import register_dataset_commands
from service._cli_gradcheck import register_gradcheck_command
from service._cli_k8s import register_k8s_commands
from service._cli_server import register_server_commands
from service._cli_slurm import register_slurm_commands
from service._cli_studies import counts, progress_line, status_lines, studies_table
from service.client import HpsClient
from service.spec_files import load_spec

__all__ = ["DEFAULT_URL", "EXAMPLE_SPEC", "app", "main"]

ACTIVE_STATUSES = frozenset({"queued", "running"})

EXAMPLE_SPEC = """\
name: digits-random
dataset: digits
model: mlp
objective: {metric: dev_loss, direction: minimize}
search:
  sampler: random
  n_trials: 40
  parallelism: 2
  seed: 0
  space:
    lr: {type: float, low: 3.0e-4, high: 3.0e-2, log: true}
    keep_prob: {type: float, low: 0.5, high: 1.0}
    hidden: {type: layers, depth: [1, 2], units: [64, 512], log: true}
    batch_norm: {type: categorical, choices: [true, false]}
training: {epochs: 40, batch_size: 64, optimizer: adam, lr_schedule: cosine}
pruning: {divergence_factor: 3.0, pruner: median, warmup_epochs: 5}
"""

app = typer.Typer(
    name="hpsearch",
    help="Self-hosted hyperparameter search: submit specs, watch studies, read leaderboards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
register_server_commands(app)
register_dataset_commands(app)
register_gradcheck_command(app)
register_agent_command(app)
register_slurm_commands(app)
register_k8s_commands(app)

StudyId = Annotated[int, typer.Argument(help="Study id.", min=1)]
IntervalOption = Annotated[
    float, typer.Option("--interval", min=0.05, help="Seconds between status polls.")
]
TopOption = Annotated[int, typer.Option("--top", min=1, help="How many trials to show.")]


# --- rendering ----------------------------------------------------------------------------


def watch_study(client: HpsClient, study_id: int, interval: float, console: Console) -> str:
    """Poll a study with a progress bar until it leaves queued/running; return final status."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    study = client.get_study(study_id)
    last_line = ""
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("", total=None)
        while True:
            complete, pruned, failed, _ = counts(study)
            done = complete + pruned + failed
            total = max(int(study.get("n_trials") or 0), done)
            line = progress_line(study)
            progress.update(task, total=total or None, completed=done, description=line)
            if not console.is_interactive and line != last_line:
                progress.console.print(Text(f"study {study_id} [{study.get('status')}] {line}"))
            last_line = line
            if study.get("status") not in ACTIVE_STATUSES:
                return str(study.get("status"))
            time.sleep(interval)
            study = client.get_study(study_id)


def study_page_url(base_url: str, study_id: Any) -> str:
    """The study's web page on the server the CLI talks to."""
    return f"{base_url.rstrip('/')}/studies/{study_id}"


def _watch_and_report(client: HpsClient, study_id: int, interval: float, top: int) -> None:
    out = console()
    try:
        status = watch_study(client, study_id, interval, out)
    except KeyboardInterrupt:
        typer.echo(f"stopped watching study {study_id}; it keeps running on the server", err=True)
        raise typer.Exit(130) from None
    print_table(out, leaderboard_table(client.leaderboard(study_id, top=top)))
    if status != "completed":
        fail(f"study {study_id} ended {status}", 1)


# --- client commands ----------------------------------------------------------------------


@app.command()
def submit(
    spec: Annotated[str, typer.Argument(help="YAML or JSON spec file ('-' reads stdin).")],
    watch: Annotated[bool, typer.Option("--watch", help="Follow the study until it ends.")] = False,
    interval: IntervalOption = 1.0,
    top: TopOption = 10,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Submit a study spec to the server."""
    body = load_spec(spec)
    with connect(url) as client:
        study = client.create_study(body)
        typer.echo(f"created study {study.get('id')} ({study.get('name')})")
        typer.echo(f"page: {study_page_url(url, study.get('id'))}")
        if watch:
            _watch_and_report(client, int(study["id"]), interval, top)


@app.command("list")
def list_studies(
    offset: Annotated[int, typer.Option(min=0, help="Skip this many studies.")] = 0,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 50,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """List studies."""
    with connect(url) as client:
        page = client.list_studies(offset=offset, limit=limit)
    print_table(console(), studies_table(page))


@app.command()
def status(study_id: StudyId, url: UrlOption = DEFAULT_URL) -> None:
    """Show one study's status, trial counts and best trial."""
    with connect(url) as client:
        study = client.get_study(study_id)
    typer.echo("\n".join(status_lines(study)))


@app.command()
def watch(
    study_id: StudyId,
    interval: IntervalOption = 1.0,
    top: TopOption = 10,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Follow a study until it completes (exit 0) or is cancelled (exit 1)."""
    typer.echo(f"page: {study_page_url(url, study_id)}")
    with connect(url) as client:
        _watch_and_report(client, study_id, interval, top)


@app.command()
def leaderboard(
    study_id: StudyId,
    top: TopOption = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the server's JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Show the best trials of a study."""
    if as_json and as_csv:
        fail("--json and --csv are mutually exclusive", 2)
    with connect(url) as client:
        board = client.leaderboard(study_id, top=top)
    if as_json:
        typer.echo(json.dumps(board, indent=2))
    elif as_csv:
        write_leaderboard_csv(board)
    else:
        print_table(console(), leaderboard_table(board))
        test = held_out_of(board)
        if test is not None:
            typer.echo(test)


@app.command()
def cancel(study_id: StudyId, url: UrlOption = DEFAULT_URL) -> None:
    """Cancel a queued or running study."""
    with connect(url) as client:
        study = client.cancel(study_id)
    typer.echo(f"study {study.get('id')} ({study.get('name')}): {study.get('status')}")


@app.command()
def publish(
    study_id: StudyId,
    private: Annotated[bool, typer.Option("--private", help="Make it private again.")] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Make a study public: its pages and reads then work without a key."""
    with connect(url) as client:
        study = client.set_public(study_id, not private)
    shown = "public" if study.get("public") else "private"
    typer.echo(f"study {study.get('id')} ({study.get('name')}): {shown}")


@app.command()
def workers(url: UrlOption = DEFAULT_URL) -> None:
    """List the workers the server knows about."""
    with connect(url) as client:
        page = client.list_workers()
    rows: list[dict[str, Any]] = page.get("data") or []
    keys = (
        "id",
        "host",
        "pid",
        "device",
        "status",
        "study_id",
        "trial_number",
        "stack",
        "last_seen",
    )
    table = Table(caption=f"workers: {page.get('count', len(rows))}", box=box.SIMPLE_HEAD)
    for key in keys:
        table.add_column(key.replace("_", " "))
    for row in rows:
        table.add_row(*(Text(_worker_cell(row, key)) for key in keys))
    print_table(console(), table)


def _worker_cell(row: dict[str, Any], key: str) -> str:
    """A cell of the workers table; ``stack`` (the trials a worker trains together) as
    ``12,13,14`` (``fmt`` would join a list with dashes, as it does layer sizes)."""
    value = row.get(key)
    if key == "stack" and isinstance(value, list):
        return ",".join(fmt(n) for n in value)
    return fmt(value)


@app.command()
def example() -> None:
    """Print an example study spec (YAML)."""
    typer.echo(EXAMPLE_SPEC, nl=False)


def main() -> None:
    """Console-script entry point (``hpsearch``). A database or an Optuna that hpsearch
    must not write to, or a bad ``HPS_*`` setting, is one clear line, not a traceback."""
    from pydantic import ValidationError

    try:
        app()
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        problems = "; ".join(
            (f"HPS_{'_'.join(map(str, e['loc'])).upper()}: " if e["loc"] else "") + e["msg"]
            for e in exc.errors()
        )
        typer.echo(f"error: {problems}", err=True)
        raise SystemExit(2) from None
    except RuntimeError as exc:
        from search.optuna_rows import OptunaSchemaError  # imports optuna: only here

        if not isinstance(exc, OptunaSchemaError):
            raise
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
