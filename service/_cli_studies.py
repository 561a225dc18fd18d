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


def counts(study: dict[str, Any]) -> tuple[int, int, int, int]:
    """(complete, pruned, failed, running) from a StudyPublic."""
    found = study.get("counts") or {}
    complete, pruned, failed, running = (
        int(found.get(key) or 0) for key in ("complete", "pruned", "fail", "running")
    )
    return complete, pruned, failed, running


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
    complete, pruned, failed, running = counts(study)
    return (
        f"complete {complete} · pruned {pruned} · failed {failed} · running {running}"
        f" · best {best_value(study)}"
    )


def studies_table(page: dict[str, Any]) -> Table:
    """A page of ``GET /api/v1/studies`` as the ``list`` table."""
    studies: list[dict[str, Any]] = page.get("data") or []
    table = Table(
        caption=f"{len(studies)} of {page.get('count', len(studies))} studies", box=box.SIMPLE_HEAD
    )
    for name in ("id", "name", "status", "dataset", "sampler", "done/total", "best"):
        table.add_column(name, justify="right" if name in ("id", "done/total", "best") else "left")
    for study in studies:
        complete, pruned, failed, _ = counts(study)
        done = f"{complete + pruned + failed}/{fmt(study.get('n_trials'))}"
        cells = [study.get(key) for key in ("id", "name", "status")]
        cells += [dataset_label(study), study.get("sampler")]
        table.add_row(*(Text(fmt(cell)) for cell in cells), done, best_value(study))
    return table


def status_lines(study: dict[str, Any]) -> list[str]:
    """One study's status, trial counts, best trial and held-out result, as ``status``
    prints them."""
    complete, pruned, failed, running = counts(study)
    lines = [
        f"study {study.get('id')} ({study.get('name')}): {study.get('status')}",
        f"{trained_on(study)} · sampler {study.get('sampler')} · "
        f"{study.get('direction')} {study.get('metric')}",
        f"trials: {complete + pruned + failed}/{fmt(study.get('n_trials'))} finished "
        f"(complete {complete}, pruned {pruned}, failed {failed}), running {running}, "
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
    "progress_line",
    "status_lines",
    "studies_table",
    "trained_on",
]
