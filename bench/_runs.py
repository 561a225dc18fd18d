"""Run a whole study through a real worker in this process, on a fresh SQLite file, and
hand back its trials: the building block of the search-quality benchmarks (pruning,
random_vs_grid), which compare outcomes (epochs trained, best values), not bookkeeping."""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import select

from search import store
from search.spec import ExperimentSpec
from search.studies import create_study
from search.worker import Worker, WorkerOptions
from service.runner import upgrade_db


@dataclass(frozen=True)
class Trial:
    number: int
    state: str
    value: float | None
    epochs_run: int
    params: dict[str, Any]
    reason: str | None


@dataclass(frozen=True)
class StudyRun:
    trials: list[Trial]
    wall_s: float
    test: dict[str, Any] | None = None  # the winner's held-out test metrics

    @property
    def test_error(self) -> float:
        """The winner's test error (1 - accuracy, or RMSE): nan if it was not scored."""
        value = (self.test or {}).get("error")
        return float("nan") if value is None else float(value)

    @property
    def epochs(self) -> int:
        return sum(t.epochs_run for t in self.trials)

    def best(self, minimize: bool = True) -> float:
        values = [t.value for t in self.trials if t.state == "COMPLETE" and t.value is not None]
        return min(values) if minimize else max(values)


def run_study(spec: dict[str, Any], *, threads: int = 1) -> StudyRun:
    """Submit ``spec`` to a fresh database and serve it with one in-process worker."""
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="hps-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        with contextlib.redirect_stdout(io.StringIO()):
            upgrade_db(url)
        factory = store.make_session_factory(url)
        row = create_study(
            session_factory=factory, storage_url=url, spec=ExperimentSpec.model_validate(spec)
        )
        options = WorkerOptions(db_url=url, study_id=row.id, exit_when_idle=True, threads=threads)
        t0 = time.perf_counter()
        Worker(options).run()
        wall = time.perf_counter() - t0
        with store.session_scope(factory) as s:
            rows = s.scalars(select(store.TrialRow).where(store.TrialRow.study_id == row.id))
            trials = [
                Trial(t.number, t.state, t.value, t.epochs_run, dict(t.params), t.reason)
                for t in sorted(rows, key=lambda t: t.number)
            ]
            test = store.get_study(session=s, study_id=row.id).test_metrics  # type: ignore[union-attr]
    return StudyRun(trials, wall, test)
