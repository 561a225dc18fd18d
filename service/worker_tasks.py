"""What one worker task of a study runs, whichever engine starts it: a Slurm array task
(``service/slurm.py``) or a Kubernetes pod (``service/k8s.py``).

A study of a built-in model runs ``hpsearch worker --study ID --exit-when-idle``: it exits
0 once the study has ended. A study of the user's own code runs ``hpsearch agent ID --
CMD...`` (the command after ``--``), which talks to the API only. Both hand their trial
back on SIGTERM (the worker at its next epoch boundary), so an engine must wait for that
between SIGTERM and SIGKILL: ``DEFAULT_STOP_S`` by default. Standard library only.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

# Seconds an engine gives a task between SIGTERM and SIGKILL (Slurm's --signal=B:TERM@S,
# Kubernetes' terminationGracePeriodSeconds): it should exceed one epoch of the study.
DEFAULT_STOP_S = 120
ACTIVE_STATUSES = ("queued", "running")


class StudyTaskError(ValueError):
    """The study cannot be given tasks as asked; ``code`` is the CLI's exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def hpsearch_command() -> list[str]:
    """How a task starts this same hpsearch: the ``hpsearch`` script beside this Python
    (an absolute path: slurmd's tasks need not share the submitter's PATH), else
    ``python -m service.cli``."""
    script = Path(sys.executable).with_name("hpsearch")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "service.cli"]


def check_study(
    *,
    study_id: int,
    status: str,
    own_code_study: bool,
    command: Sequence[str],
    usage: str,
    batch_trials: str | None = None,
) -> None:
    """Refuse tasks for a study that has ended, and a command that does not fit the
    study's kind (``usage``: how to give one, shown when missing)."""
    if status not in ACTIVE_STATUSES:
        raise StudyTaskError(f"study {study_id} is {status}: it has no trials left to run", 1)
    if own_code_study and not command:
        raise StudyTaskError(
            f"study {study_id} trains your own code: give the command each trial runs after "
            f"'--' ({usage})",
            2,
        )
    if command and not own_code_study:
        raise StudyTaskError(
            f"study {study_id} trains a built-in model: its workers take no command", 2
        )
    if own_code_study and batch_trials not in (None, "1"):
        raise StudyTaskError(
            f"study {study_id} trains your own code: --batch-trials stacks built-in MLP "
            "trials, and your command runs once per trial",
            2,
        )


def checked_batch_trials(value: str | None) -> str | None:
    """``--batch-trials`` for the tasks' workers: None (1), "auto" or 1..256; ValueError
    naming a bad value."""
    from search._batch_option import parse_batch_trials

    return None if value is None else str(parse_batch_trials(value))


def task_command(
    *,
    study_id: int,
    hpsearch: Sequence[str],
    own_code: Sequence[str] = (),
    cpus: int = 1,
    gpus: int = 0,
    agent: Sequence[str] = (),
    batch_trials: str | None = None,
) -> list[str]:
    """The command each task runs: a worker of a built-in study (``cpus`` torch threads,
    CUDA when given ``gpus``, ``batch_trials`` trials trained together), or the agent
    running ``own_code`` (the user's command) for a study of the user's own code (``agent``:
    how to start it; default ``hpsearch agent``)."""
    if own_code:
        return [*(agent or [*hpsearch, "agent"]), str(study_id), "--", *own_code]
    command = [*hpsearch, "worker", "--study", str(study_id), "--exit-when-idle"]
    command += ["--threads", str(cpus)]
    if gpus:
        command += ["--device", "cuda"]  # a task given no GPU fails loudly, never trains on CPU
    if batch_trials not in (None, "1"):
        command += ["--batch-trials", str(batch_trials)]
    return command


__all__ = [
    "ACTIVE_STATUSES",
    "DEFAULT_STOP_S",
    "StudyTaskError",
    "check_study",
    "checked_batch_trials",
    "hpsearch_command",
    "task_command",
]
