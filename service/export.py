"""CSV export of a leaderboard view, safe to open in a spreadsheet (see
:mod:`service.csv_cells`): one column per parameter and metric, full precision."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator, Sequence

from search import store
from service.csv_cells import csv_cell
from service.views import Column

TIMES = ("started_at", "finished_at")


def csv_header(columns: Sequence[Column]) -> list[str]:
    """Column names: the objective under its metric's name, parameters and metrics by name;
    a parameter or metric whose name another column has too (the user's own code names
    them: a reported ``lr``, a parameter ``state``) as ``param:NAME`` / ``metric:NAME``."""
    names = [
        c.label if c.sort == "value" else (c.sort.partition(":")[2] or c.sort) for c in columns
    ]
    taken = Counter([*names, *TIMES])
    names = [c.sort if c.group and taken[n] > 1 else n for c, n in zip(columns, names, strict=True)]
    return [csv_cell(n) for n in [*names, *TIMES]]


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


__all__ = ["csv_header", "trials_csv"]
