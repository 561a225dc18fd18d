"""CSV export of a leaderboard view, safe to open in a spreadsheet.

Text cells that start with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return) get a
leading ``'`` so a spreadsheet shows them instead of running them as formulas (OWASP's
advice for CSV injection); numbers are written as numbers, at full precision.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from search import store
from search.axes import layers_label
from service.views import Column

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    text = layers_label(value) if isinstance(value, list | tuple) else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def csv_header(columns: Sequence[Column]) -> list[str]:
    """Column names: the objective under its metric's name, parameters and metrics by name."""
    names = [
        c.label if c.sort == "value" else (c.sort.partition(":")[2] or c.sort) for c in columns
    ]
    return [csv_cell(n) for n in names] + ["started_at", "finished_at"]


def trials_csv(rows: Sequence[store.TrialSummary], columns: Sequence[Column]) -> Iterator[str]:
    """The header line, then one line per trial."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(csv_header(columns))
    yield flush()
    for i, row in enumerate(rows, 1):
        cells = [csv_cell(c.get(row)) for c in columns]
        writer.writerow([*cells, csv_cell(row.started_at), csv_cell(row.finished_at)])
        if i % 500 == 0:
            yield flush()
    yield flush()


__all__ = ["FORMULA_PREFIXES", "csv_cell", "csv_header", "trials_csv"]
