"""The winner's one look at the test split.

The search chooses by the dev split only; the test split stays untouched until a study
has ended (completed, or cancelled with trials finished). Then one worker claims the
study's evaluation, loads the best trial's kept model exactly as a user would load the
downloaded file (``models.Predictor``), predicts the raw test rows and records the test
metrics on the study, apart from the search objective. Nothing is retrained.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from search.spec import ExperimentSpec
from search.store import (
    TEST_DONE,
    TEST_FAILED,
    TEST_NONE,
    best_model,
    claim_test,
    get_study,
    record_test,
    session_scope,
    studies_awaiting_test,
    with_retry,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def score_predictions(task: str, predicted: np.ndarray, actual: pd.Series) -> dict[str, Any]:
    """Test metrics of predictions in the original label space: accuracy for
    classification; RMSE, R^2 and MSE (in the target's units) for regression."""
    from models._tabular import label_value

    n = len(actual)
    if task == "classification":
        hits = sum(p == label_value(a) for p, a in zip(predicted, actual, strict=True))
        return {"accuracy": hits / n, "error": 1.0 - hits / n, "n_rows": n}
    y = actual.to_numpy(dtype=np.float64)
    residual = np.asarray(predicted, dtype=np.float64) - y
    mse = float(np.mean(residual**2))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0 else float("nan")
    return {
        "rmse": math.sqrt(mse),
        "r2": r2 if math.isfinite(r2) else None,
        "mse": mse,
        "error": math.sqrt(mse),
        "n_rows": n,
    }


def test_metrics(
    *,
    session_factory: sessionmaker[Session],
    spec: ExperimentSpec,
    config: dict[str, Any],
    weights: bytes,
) -> dict[str, Any]:
    """The kept model's metrics on the spec's test split (raw rows, as a user has them).
    torch and pandas are imported here, by a study with a kept model: a worker that ends
    synthetic studies only (no model to score) never loads them."""
    from models import Predictor, split_table
    from search.datasets import spec_table

    table = spec_table(session_factory=session_factory, dataset=spec.data)
    ds = spec.data
    test = split_table(table, ds.split, ds.seed)[2]
    predictor = Predictor(config, weights)
    predicted = predictor(test.drop(columns=[table.target]))
    return score_predictions(table.task, predicted, test[table.target])


def evaluate_winners(
    *,
    session_factory: sessionmaker[Session],
    read_session_factory: sessionmaker[Session],
    stale_after_s: float,
    study_id: int | None = None,
) -> int:
    """Evaluate the winner of every ended study still waiting for it (each claimed by one
    worker); returns how many this call evaluated."""

    def txn(fn: Any) -> Any:
        def run() -> Any:
            with session_scope(session_factory) as session:
                return fn(session)

        return with_retry(run)

    with session_scope(read_session_factory) as session:
        waiting = studies_awaiting_test(
            session=session, stale_after_s=stale_after_s, study_id=study_id
        )
    done = 0
    for sid in waiting:
        claimed = txn(
            lambda s, i=sid: claim_test(session=s, study_id=i, stale_after_s=stale_after_s)
        )
        if not claimed:
            continue
        result = _evaluate(session_factory, read_session_factory, sid)
        txn(
            lambda s, i=sid, r=result: record_test(
                session=s, study_id=i, state=r[0], trial_number=r[1], metrics=r[2]
            )
        )
        done += 1
    return done


def _evaluate(
    session_factory: sessionmaker[Session], reads: sessionmaker[Session], study_id: int
) -> tuple[str, int | None, dict[str, Any] | None]:
    with session_scope(reads) as session:
        study = get_study(session=session, study_id=study_id)
        model = best_model(session=session, study=study) if study is not None else None
        if study is None or model is None:
            return TEST_NONE, None, None
        spec = ExperimentSpec.model_validate(study.spec)
        number, config, weights = model.number, model.config, model.weights
    try:
        metrics = test_metrics(session_factory=reads, spec=spec, config=config, weights=weights)
    except Exception as exc:  # a dataset deleted meanwhile, a bug: say so on the study
        log.exception("test evaluation of study %s failed", study_id)
        return TEST_FAILED, number, {"error": f"{type(exc).__name__}: {exc}"[:500]}
    log.info("study %s: trial %s scored on the test split: %s", study_id, number, metrics)
    return TEST_DONE, number, metrics


__all__ = ["evaluate_winners", "score_predictions", "test_metrics"]
