"""How the ``hpsearch`` client commands render studies: the ``list`` table, one study's
``status`` and the progress line ``watch`` shows. Pure functions of the server's JSON
(StudyPublic), imported by the CLI: nothing heavy."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from service._cli_boards import checks_text, diagnosis_lines, held_out_of
from service._cli_common import fmt
from service.own_code import dataset_label, is_own_code

WAITING = "waiting for a worker"


def counts(study: dict[str, Any]) -> tuple[int, int, int, int]:
    """(complete, pruned, failed, running) slots from a StudyPublic (a server without
    ``slots`` sends attempts only: those, then)."""
    slots = slot_counts(study)
    return slots["complete"], slots["pruned"], slots["failed"], slots["running"]


def slot_counts(study: dict[str, Any]) -> dict[str, int]:
    """The study's ``slots`` (done, complete, pruned, failed, running, lost_retried)."""
    found = study.get("slots")
    if not isinstance(found, dict):  # an older server: its attempts by state
        attempts = study.get("counts") or {}
        found = {**attempts, "failed": attempts.get("fail")}
    slots = {
        key: int(found.get(key) or 0)
        for key in ("complete", "pruned", "failed", "running", "lost_retried")
    }
    return {**slots, "done": slots["complete"] + slots["pruned"] + slots["failed"]}


def done_text(study: dict[str, Any]) -> str:
    """``24/24 done (21 complete, 3 pruned); 2 lost attempts retried``: slots, as a user
    counts them (a retried slot once), never more done than the budget."""
    slots = slot_counts(study)
    parts = [f"{slots[k]} {k}" for k in ("complete", "pruned", "failed") if slots[k]]
    text = f"{slots['done']}/{fmt(study.get('n_trials'))} done"
    text += f" ({', '.join(parts)})" if parts else ""
    retried = slots["lost_retried"]
    if retried:
        text += f"; {retried} lost attempt{'s' if retried != 1 else ''} retried"
    return text


def waiting_line(study: dict[str, Any]) -> str | None:
    """Why a stuck study is not moving, or None when it is not waiting."""
    if not study.get("waiting"):
        return None
    if is_own_code(study):
        return f"{WAITING}: no client of your code has claimed or ended a trial lately"
    return f"{WAITING}: no live worker can serve this study"


def best_value(study: dict[str, Any]) -> str:
    best = study.get("best")
    return fmt(best.get("value")) if isinstance(best, dict) else "-"


def trained_on(study: dict[str, Any]) -> str:
    """``dataset digits (classification)``, or ``your code`` (model external)."""
    if is_own_code(study):
        return dataset_label(study)
    task = f" ({study['task']})" if study.get("task") else ""
    return f"dataset {study.get('dataset')}{task}"


def progress_line(study: dict[str, Any]) -> str:
    line = f"{done_text(study)} · running {slot_counts(study)['running']}"
    line += f" · best {best_value(study)}"
    return f"{line} · {WAITING}" if study.get("waiting") else line


def studies_table(page: dict[str, Any]) -> Table:
    """A page of ``GET /api/v1/studies`` as the ``list`` table."""
    studies: list[dict[str, Any]] = page.get("data") or []
    table = Table(
        caption=f"{len(studies)} of {page.get('count', len(studies))} studies", box=box.SIMPLE_HEAD
    )
    for name in ("id", "name", "status", "dataset", "sampler", "done/total", "best"):
        table.add_column(name, justify="right" if name in ("id", "done/total", "best") else "left")
    for study in studies:
        done = f"{slot_counts(study)['done']}/{fmt(study.get('n_trials'))}"
        status = f"{study.get('status')}, {WAITING}" if study.get("waiting") else study["status"]
        cells = [study.get("id"), study.get("name"), status]
        cells += [dataset_label(study), study.get("sampler")]
        table.add_row(*(Text(fmt(cell)) for cell in cells), done, best_value(study))
    return table


def status_lines(study: dict[str, Any]) -> list[str]:
    """One study's status, trial counts, best trial and held-out result, as ``status``
    prints them."""
    waiting = waiting_line(study)
    lines = [
        f"study {study.get('id')} ({study.get('name')}): {study.get('status')}",
        *([waiting] if waiting else []),
        f"{trained_on(study)} · sampler {study.get('sampler')} · "
        f"{study.get('direction')} {study.get('metric')}",
        f"trials: {done_text(study)} · running {slot_counts(study)['running']}, "
        f"parallelism {fmt(study.get('parallelism'))}",
    ]
    best = study.get("best")
    if isinstance(best, dict):
        lines.append(f"best: trial {best.get('number')} value {fmt(best.get('value'))}")
        lines += [f"  {k} = {fmt(v)}" for k, v in sorted((best.get("params") or {}).items())]
        lines += diagnosis_lines(best.get("diagnosis"))
        checks = checks_text(best)
        lines += [f"  checks: {checks}"] if checks else []
    else:
        lines.append("best: none yet")
    test = held_out_of(study)
    return lines if test is None else [*lines, test]


__all__ = [
    "best_value",
    "counts",
    "done_text",
    "progress_line",
    "slot_counts",
    "waiting_line",
    "status_lines",
    "studies_table",
    "trained_on",
]
