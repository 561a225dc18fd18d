"""``hpsearch slurm submit|status|cancel STUDY``: workers of one study as a Slurm job array
(``service/slurm.py`` writes the script and calls Slurm), recorded in ``hps_slurm_jobs``.

Server-side commands like ``worker``: they read the study and record its jobs with the
database URL (``--db`` or ``HPS_DATABASE_URL``), which the job inherits, and import the
database machinery inside the command.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Sequence
from functools import partial
from typing import Annotated, Any, TypeVar

import typer

from service._cli_common import BatchTrialsOption, fail
from service.slurm import (
    DEFAULT_SIGNAL_BEFORE_S,
    ArrayRequest,
    SlurmError,
    cancel_job,
    render_script,
    submit_script,
    task_states,
)
from service.worker_tasks import StudyTaskError, check_study, hpsearch_command

__all__ = ["register_slurm_commands"]

T = TypeVar("T")
StudyArg = Annotated[int, typer.Argument(help="Study id.", min=1)]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: HPS_DATABASE_URL / settings)."),
]


def _db_url(db: str | None) -> str:
    from service.settings import Settings

    return db or Settings().database_url


def _in_db(url: str, fn: Callable[[Any], T]) -> T:
    """``fn(session)`` in one transaction; a database that cannot be read is one line."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from search.store import make_session_factory, session_scope

    try:
        with session_scope(make_session_factory(url)) as session:
            return fn(session)
    except SQLAlchemyError as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        fail(f"cannot use the database {shown} ({reason}); is it migrated (hpsearch db upgrade)?")


def _study(session: Any, study_id: int) -> tuple[str, bool]:
    """The study's status and whether it trains the user's own code; unknown: exit 1."""
    from search.store import get_study
    from service.own_code import EXTERNAL_TASK

    row = get_study(session=session, study_id=study_id)
    if row is None:
        fail(f"study {study_id} not found")
    return row.status, row.task == EXTERNAL_TASK


def _slurm(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except SlurmError as exc:
        fail(str(exc))


def submit(
    study: StudyArg,
    workers: Annotated[int, typer.Option("--workers", help="Worker tasks in the job array.")],
    command: Annotated[
        list[str] | None,
        typer.Argument(
            help="For a study of your own code: the command each trial runs, after '--' "
            "(as for `hpsearch agent`)."
        ),
    ] = None,
    parallel: Annotated[
        int | None, typer.Option("--parallel", help="At most this many tasks at once (%P).")
    ] = None,
    gpus: Annotated[int, typer.Option("--gpus-per-worker", help="GPUs per task (gres).")] = 0,
    cpus: Annotated[int, typer.Option("--cpus-per-worker", help="CPUs per task.")] = 1,
    mem: Annotated[str | None, typer.Option("--mem", help="Memory per task: 16G.")] = None,
    time: Annotated[
        str | None, typer.Option("--time", help="Time limit per task: 2:00:00.")
    ] = None,
    partition: Annotated[str | None, typer.Option("--partition", help="Partition.")] = None,
    signal_before: Annotated[
        int,
        typer.Option(
            "--signal-before",
            help="Seconds before the time limit at which a task's worker gets SIGTERM and "
            "hands its trial back.",
        ),
    ] = DEFAULT_SIGNAL_BEFORE_S,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the batch script; submit nothing.")
    ] = False,
    db: DbOption = None,
    batch_trials: BatchTrialsOption = None,
) -> None:
    """Start workers for one study as a Slurm job array (sbatch)."""
    own_code = list(command or [])
    try:
        request = ArrayRequest(
            workers=workers,
            parallel=parallel,
            gpus=gpus,
            cpus=cpus,
            mem=mem,
            time=time,
            partition=partition,
            signal_before_s=signal_before,
            batch_trials=batch_trials,
        )
    except ValueError as exc:
        fail(str(exc), 2)
    url = _db_url(db)
    status, external = _in_db(url, lambda s: _study(s, study))
    try:
        check_study(
            study_id=study,
            status=status,
            own_code_study=external,
            command=own_code,
            usage="hpsearch slurm submit ID --workers N -- python train.py --lr {lr}",
            batch_trials=request.batch_trials,
        )
    except StudyTaskError as exc:
        fail(str(exc), exc.code)
    script = render_script(
        study_id=study, request=request, hpsearch=hpsearch_command(), own_code=own_code
    )
    if dry_run:
        typer.echo(script, nl=False)
        return
    env = dict(os.environ)
    if not external:
        env["HPS_DATABASE_URL"] = url  # the workers' database (never written into the script)
    job_id = _slurm(lambda: submit_script(script, env=env))

    def record(session: Any) -> None:
        from search.store import record_slurm_job

        record_slurm_job(
            session=session,
            study_id=study,
            job_id=job_id,
            array_size=request.workers,
            submitted_by=getpass.getuser(),
        )

    _in_db(url, record)
    typer.echo(
        f"submitted Slurm job {job_id} (hps-study-{study}): {request.workers} worker task(s) "
        f"for study {study}"
    )


def _jobs(url: str, study: int) -> list[tuple[str, int, str, str]]:
    def read(session: Any) -> list[tuple[str, int, str, str]]:
        from search.store import slurm_jobs

        _study(session, study)
        return [
            (j.job_id, j.array_size, f"{j.submitted_at:%Y-%m-%d %H:%M:%S}", j.submitted_by)
            for j in slurm_jobs(session=session, study_id=study)
        ]

    return _in_db(url, read)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def status(study: StudyArg, db: DbOption = None) -> None:
    """Show the study's Slurm jobs, one line per task (squeue, else sacct)."""
    jobs = _jobs(_db_url(db), study)
    if not jobs:
        typer.echo(f"study {study}: no Slurm job submitted (hpsearch slurm submit)")
        return
    for job_id, size, when, who in jobs:
        typer.echo(
            f"study {study}: Slurm job {job_id} ({size} task{'s' if size != 1 else ''}), "
            f"submitted {when} UTC by {who}"
        )
        states, note = _slurm(partial(task_states, job_id))
        if note:
            typer.echo(f"  no task record left ({note})")
            continue
        header = ("TASK", "STATE", "ELAPSED", "NODE (REASON)")
        typer.echo(
            "\n".join(_table([header, *((s.task, s.state, s.elapsed, s.node) for s in states)]))
        )


def cancel(study: StudyArg, db: DbOption = None) -> None:
    """Cancel the study's Slurm jobs (scancel); their workers hand their trials back."""
    jobs = _jobs(_db_url(db), study)
    if not jobs:
        fail(f"study {study}: no Slurm job submitted, nothing to cancel")
    for job_id, *_ in jobs:
        done = _slurm(partial(cancel_job, job_id))
        typer.echo(f"study {study}: Slurm job {job_id} {done}")


def register_slurm_commands(app: typer.Typer) -> None:
    """Add the ``slurm`` group to the ``hpsearch`` app."""
    slurm_app = typer.Typer(help="Workers as a Slurm job array.", no_args_is_help=True)
    slurm_app.command("submit")(submit)
    slurm_app.command("status")(status)
    slurm_app.command("cancel")(cancel)
    app.add_typer(slurm_app, name="slurm", rich_help_panel="Server")
