"""Workers as a Slurm job array: the script ``hpsearch slurm submit`` writes, and the
``sbatch``/``squeue``/``sacct``/``scancel`` calls behind ``slurm submit|status|cancel``.

One job array per submission (``--array=0-(N-1)%P``, as submitit writes them), named
``hps-study-<id>``. Each task ``exec``s one worker, so the worker is the batch shell and
receives the signals Slurm sends it: ``--signal=B:TERM@S`` before the time limit, SIGTERM
on ``scancel`` or preemption. A worker's first SIGTERM ends its trial at the next epoch
boundary and hands the slot back for a retry. Built-in studies run ``hpsearch worker
--study ID --exit-when-idle``; studies of the user's own code run ``hpsearch agent ID --
CMD...``. Standard library and jinja2 only: no database here (``service/_cli_slurm.py``
reads and records the study's jobs; ``service/worker_tasks.py`` says what a task runs).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from service.worker_tasks import (
    DEFAULT_STOP_S,
    checked_batch_trials,
    hpsearch_command,
    task_command,
)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "slurm-array.sh.j2"
DEFAULT_SIGNAL_BEFORE_S = DEFAULT_STOP_S
_MEM = re.compile(r"^[1-9][0-9]*[KMGT]?$")
_TIME = re.compile(r"^([0-9]+-)?[0-9]+(:[0-9]+){0,2}$")
_PARTITION = re.compile(r"^[A-Za-z0-9_.,-]+$")


class SlurmError(RuntimeError):
    """A Slurm command is missing or refused what hpsearch asked (its message says which)."""


@dataclass(frozen=True)
class ArrayRequest:
    """What one job array asks Slurm for: ``workers`` tasks, at most ``parallel`` at once,
    each with ``gpus``, ``cpus`` and (optional) ``mem``, ``time``, ``partition``."""

    workers: int
    parallel: int | None = None
    gpus: int = 0
    cpus: int = 1
    mem: str | None = None
    time: str | None = None
    partition: str | None = None
    signal_before_s: int = DEFAULT_SIGNAL_BEFORE_S

    batch_trials: str | None = None  # --batch-trials of each built-in worker (None: 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_trials", checked_batch_trials(self.batch_trials))
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")
        if self.parallel is not None and self.parallel < 1:
            raise ValueError(f"--parallel must be at least 1, got {self.parallel}")
        if self.gpus < 0:
            raise ValueError(f"--gpus-per-worker must be 0 or more, got {self.gpus}")
        if self.cpus < 1:
            raise ValueError(f"--cpus-per-worker must be at least 1, got {self.cpus}")
        if self.mem is not None and not _MEM.match(self.mem):
            raise ValueError(f"--mem {self.mem!r}: give a size such as 4000, 16G or 512M")
        if self.time is not None and not _TIME.match(self.time):
            raise ValueError(
                f"--time {self.time!r}: give Slurm's minutes, HH:MM:SS or D-HH:MM:SS form"
            )
        if self.partition is not None and not _PARTITION.match(self.partition):
            raise ValueError(f"--partition {self.partition!r}: not a partition name")
        if not 0 < self.signal_before_s <= 65535:
            raise ValueError(
                f"--signal-before must be between 1 and 65535 s, got {self.signal_before_s}"
            )


def render_script(
    *,
    study_id: int,
    request: ArrayRequest,
    hpsearch: Sequence[str],
    own_code: Sequence[str] = (),
) -> str:
    """The job array's batch script (``service/templates/slurm-array.sh.j2``)."""
    command = task_command(
        study_id=study_id,
        hpsearch=hpsearch,
        own_code=own_code,
        cpus=request.cpus,
        gpus=request.gpus,
        batch_trials=request.batch_trials,
    )
    # Each worker named after its task, so `hpsearch workers` shows which task runs what.
    name = '--name "slurm-${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"'
    line = shlex.join(command) + ("" if own_code else f" {name}")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=False,  # a shell script, not HTML  # noqa: S701
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template(TEMPLATE).render(
        study_id=study_id,
        kind="your own code, through hpsearch agent" if own_code else "built-in workers",
        workers=request.workers,
        parallel=request.parallel or request.workers,
        cpus=request.cpus,
        gpus=request.gpus,
        mem=request.mem,
        time=request.time,
        partition=request.partition,
        signal_before=request.signal_before_s,
        command=line,
    )


def _run(
    args: list[str], *, env: Mapping[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    if shutil.which(args[0], path=(env or {}).get("PATH")) is None:
        raise SlurmError(
            f"{args[0]} not found: run this on a Slurm login node (or install slurm-client)"
        )
    try:
        return subprocess.run(
            args, input=stdin, env=env, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as exc:
        raise SlurmError(f"{args[0]} did not answer within {exc.timeout:.0f} s") from None


def submit_script(script: str, *, env: Mapping[str, str] | None = None) -> str:
    """``sbatch --parsable`` the script (on stdin); Slurm's job id."""
    done = _run(["sbatch", "--parsable"], env=env, stdin=script)
    if done.returncode != 0:
        raise SlurmError(f"sbatch refused the job: {_message(done)}")
    job_id = done.stdout.strip().split(";")[0]  # "123" or "123;cluster"
    if not job_id.isdigit():
        raise SlurmError(f"sbatch answered {done.stdout.strip()!r}, not a job id")
    return job_id


@dataclass(frozen=True)
class TaskState:
    """One array task as squeue (or sacct) sees it."""

    task: str  # 123_0 (or 123_[2-4] while pending)
    state: str
    elapsed: str
    node: str  # the node it runs on, or why it waits
    source: str  # squeue | sacct


def task_states(job_id: str) -> tuple[list[TaskState], str | None]:
    """The job's tasks: squeue while slurmctld remembers them, else sacct; with a note
    when neither knows them."""
    done = _run(
        [
            "squeue",
            f"--jobs={job_id}",
            "--array",
            "--states=all",
            "--noheader",
            "--format=%i|%T|%M|%N|%r",
        ]
    )
    rows = [line.split("|") for line in done.stdout.splitlines() if line.strip()]
    if done.returncode == 0 and rows:
        states = []
        for task, state, elapsed, node, why in rows:
            where = node or (f"({why})" if why and why != "None" else "")
            states.append(TaskState(task, state, elapsed, where, "squeue"))
        return _by_task(states), None
    squeue_note = _message(done) if done.returncode else "not in squeue"
    done = _run(
        [
            "sacct",
            f"--jobs={job_id}",
            "--allocations",
            "--noheader",
            "--parsable2",
            "--format=JobID,State,Elapsed,NodeList",
        ]
    )
    rows = [line.split("|") for line in done.stdout.splitlines() if line.strip()]
    if done.returncode == 0 and rows:
        states = [
            TaskState(task, state, elapsed, node, "sacct") for task, state, elapsed, node in rows
        ]
        return _by_task(states), None
    return [], f"squeue: {squeue_note}; sacct: {_message(done) or 'no record'}"


def _by_task(states: list[TaskState]) -> list[TaskState]:
    def key(state: TaskState) -> tuple[int, str]:
        _, _, index = state.task.partition("_")
        return (int(index), "") if index.isdigit() else (1 << 30, index)

    return sorted(states, key=key)


def cancel_job(job_id: str) -> str:
    """``scancel`` the job's tasks still pending or running; what happened, in words."""
    active = _run(
        [
            "squeue",
            f"--jobs={job_id}",
            "--array",
            "--noheader",
            "--states=PENDING,RUNNING,SUSPENDED,REQUEUED,REQUEUE_HOLD,RESIZING",
            "--format=%i",
        ]
    )
    tasks = active.stdout.split() if active.returncode == 0 else []
    if not tasks:  # ended, or so long ago that slurmctld forgot it (Invalid job id)
        return "already ended"
    done = _run(["scancel", job_id])
    if done.returncode != 0:
        raise SlurmError(f"scancel {job_id}: {_message(done) or f'exit status {done.returncode}'}")
    return f"cancelled ({len(tasks)} task{'s' if len(tasks) != 1 else ''} pending or running)"


def _message(done: subprocess.CompletedProcess[str]) -> str:
    text = (done.stderr or done.stdout or "").strip()
    return " ".join(line.removeprefix("sbatch: error: ") for line in text.splitlines())


__all__ = [
    "DEFAULT_SIGNAL_BEFORE_S",
    "ArrayRequest",
    "SlurmError",
    "TaskState",
    "cancel_job",
    "hpsearch_command",
    "render_script",
    "submit_script",
    "task_command",
    "task_states",
]
