"""How the ``hpsearch`` client commands render a leaderboard, the held-out test result and a
trial's bias/variance reading."""

from __future__ import annotations

import csv
import sys
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from service._cli_common import fmt
from service.csv_cells import csv_cell
from service.own_code import is_own_code

# The metrics a leaderboard shows for each task (the objective is the value column).
TASK_METRICS = {
    "classification": ("dev_accuracy", "dev_loss", "train_loss"),
    "regression": ("dev_rmse", "dev_r2", "dev_loss", "train_loss"),
}


def _board_metrics(board: dict[str, Any], rows: list[dict[str, Any]], metric: str) -> list[str]:
    """Accuracy for classification, RMSE and R^2 for regression; every metric the user's
    own code reported, in the order first seen (every recorded metric from a server that
    does not say the task)."""
    seen = dict.fromkeys(name for row in rows for name in (row.get("metrics") or {}))
    if is_own_code(board):
        return [name for name in seen if name != metric]
    recorded = set(seen)
    shown = TASK_METRICS.get(str(board.get("task")))
    if shown is None:
        return sorted(recorded - {metric})
    return [name for name in shown if name != metric and name in recorded]


def held_out_line(test: Any) -> str | None:
    """The winner's held-out test metrics as one labelled line (None before they exist)."""
    if not isinstance(test, dict) or test.get("state") in (None, "pending"):
        return None
    if test.get("state") != "done":
        detail = (test.get("metrics") or {}).get("error") or "no complete trial to score"
        return f"held-out test set: {test.get('state')} ({detail})"
    metrics = test.get("metrics") or {}
    shown = [k for k in ("accuracy", "rmse", "r2") if metrics.get(k) is not None]
    values = ", ".join(f"{k} {fmt(metrics[k])}" for k in shown)
    return (
        f"held-out test set (trial {test.get('trial')}, scored once after the search; "
        f"never used to choose): {values} on {metrics.get('n_rows')} rows"
    )


def held_out_of(study: dict[str, Any]) -> str | None:
    """The held-out line of a study or leaderboard (the user's own code has none here)."""
    return None if is_own_code(study) else held_out_line(study.get("test"))


def diagnosis_text(diagnosis: Any) -> str:
    return str(diagnosis.get("label")) if isinstance(diagnosis, dict) else ""


def checks_text(row: dict[str, Any]) -> str:
    """A trial's initial-loss warning (the server's ``initial_loss_off``) and where early
    stopping ended it, as one cell; empty when there is nothing to say."""
    notes = []
    if row.get("initial_loss_off"):
        notes.append(
            f"initial loss {fmt(row.get('initial_loss'))} far from "
            f"{fmt(row.get('expected_initial_loss'))}: check init / input scaling"
        )
    if row.get("stopped_early_at") is not None:
        notes.append(
            f"stopped early at epoch {row.get('stopped_early_at')} "
            f"(kept epoch {fmt(row.get('best_epoch'))})"
        )
    return "; ".join(notes)


def leaderboard_table(board: dict[str, Any]) -> Table:
    """The leaderboard as a table; the objective metric is the value column, so it is not
    repeated among the metrics, and ``state`` only shows when some row is not COMPLETE."""
    rows: list[dict[str, Any]] = board.get("data") or []
    metric = str(board.get("metric") or "value")
    params = sorted({name for row in rows for name in (row.get("params") or {})})
    metrics = _board_metrics(board, rows, metric)
    show_state = any(row.get("state") != "COMPLETE" for row in rows)
    diagnoses = ["bias/variance"] if any(row.get("diagnosis") for row in rows) else []
    checks = ["checks"] if any(checks_text(row) for row in rows) else []
    table = Table(
        title=f"study {board.get('study_id')} leaderboard",
        caption=f"{board.get('direction')} {metric}",
        box=box.SIMPLE_HEAD,
    )
    states = ["state"] if show_state else []
    # A reported metric named like a parameter (the user's own code) says which it is.
    labels = [f"{m} (metric)" if m in params else m for m in metrics]
    names = ["#", "trial", *states, metric, *params, *labels, *diagnoses, "epochs", "time (s)"]
    for name in [*names, *checks]:
        left = name in ("state", "bias/variance", "checks")
        table.add_column(name, justify="left" if left else "right", overflow="fold")
    for row in rows:
        row_params, row_metrics = row.get("params") or {}, row.get("metrics") or {}
        cells = [row.get("rank"), row.get("number"), *[row.get(key) for key in states]]
        cells += [row.get("value"), *(row_params.get(name) for name in params)]
        cells += [row_metrics.get(name) for name in metrics]
        cells += [diagnosis_text(row.get("diagnosis")) for _ in diagnoses]
        cells += [row.get("epochs_run"), row.get("duration_s")]
        cells += [checks_text(row) for _ in checks]
        table.add_row(*(Text(fmt(cell)) for cell in cells))
    return table


def write_leaderboard_csv(board: dict[str, Any]) -> None:
    """rank, number, value, the parameters, epochs and duration; for the user's own code
    every metric it reported too (as ``metric:NAME`` where a parameter has its name)."""
    rows: list[dict[str, Any]] = board.get("data") or []
    params = sorted({name for row in rows for name in (row.get("params") or {})})
    own = is_own_code(board)
    metrics = _board_metrics(board, rows, str(board.get("metric"))) if own else []
    taken = {"rank", "number", "value", *params, "epochs_run", "duration_s"}
    named = [f"metric:{m}" if m in taken else m for m in metrics]
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["rank", "number", "value", *params, *named, "epochs_run", "duration_s"])
    for row in rows:
        row_params, row_metrics = row.get("params") or {}, row.get("metrics") or {}
        cells = [row.get("rank"), row.get("number"), row.get("value")]
        cells += [row_params.get(name) for name in params]
        cells += [row_metrics.get(name) for name in metrics]
        cells += [row.get("epochs_run"), row.get("duration_s")]
        writer.writerow([csv_cell(cell) for cell in cells])


def diagnosis_lines(d: Any) -> list[str]:
    if not isinstance(d, dict):
        return []
    lines = [
        f"  bias/variance: {d.get('label')} (train error {fmt(d.get('train_error'))}, "
        f"dev error {fmt(d.get('dev_error'))}, baseline {fmt(d.get('baseline_error'))})"
    ]
    return lines + [f"    try: {r}" for r in d.get("remedies") or []]


__all__ = [
    "TASK_METRICS",
    "checks_text",
    "diagnosis_lines",
    "diagnosis_text",
    "held_out_line",
    "leaderboard_table",
    "write_leaderboard_csv",
]
