"""Grow a study by many finished trials at once, in bulk SQL: the benchmarks measure the
per-trial path at trial 1,000 and 10,000 of one study without spending minutes on the
trials before. Rows are written through Optuna's own ORM models and the hps_* tables,
shaped as the worker writes them (``search.optuna_rows``, ``search.lifecycle``): each
trial COMPLETE with its parameters, value, every intermediate value and, for an hpsearch
study, its hps_trials row with curves, the study's claimed budget and change cursor."""

from __future__ import annotations

import math
import random
from datetime import datetime
from typing import Any

from optuna.distributions import FloatDistribution, IntDistribution, distribution_to_json
from optuna.storages._rdb import models
from optuna.trial import TrialState
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from search import store
from search.optuna_rows import SLOT_ATTR

DISTRIBUTIONS: dict[str, FloatDistribution | IntDistribution] = {
    "lr": FloatDistribution(1e-5, 1.0, log=True),
    "keep_prob": FloatDistribution(0.5, 1.0),
    "batch_size": IntDistribution(16, 256, log=True),
}
CHUNK = 2000


def _params(rng: random.Random) -> dict[str, Any]:
    return {
        "lr": math.exp(rng.uniform(math.log(1e-5), 0.0)),
        "keep_prob": rng.uniform(0.5, 1.0),
        "batch_size": int(math.exp(rng.uniform(math.log(16), math.log(256)))),
    }


def _chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]


def add_finished_trials(
    session: Session, *, optuna_study_id: int, count: int, epochs: int, seed: int = 0
) -> list[tuple[int, int, dict[str, Any], list[float]]]:
    """``count`` COMPLETE Optuna trials after the study's last; returns (trial id,
    number, params, curve) of each."""
    rng = random.Random(seed)
    first = session.scalar(
        select(func.count(models.TrialModel.trial_id)).where(
            models.TrialModel.study_id == optuna_study_id
        )
    )
    first, now = int(first or 0), datetime.now()
    state = TrialState.COMPLETE
    rows = [
        {"study_id": optuna_study_id, "number": first + i, "state": state}
        | {"datetime_start": now, "datetime_complete": now}
        for i in range(count)
    ]
    for chunk in _chunks(rows):
        session.execute(insert(models.TrialModel), chunk)
    ids = session.execute(
        select(models.TrialModel.trial_id, models.TrialModel.number)
        .where(models.TrialModel.study_id == optuna_study_id)
        .where(models.TrialModel.number >= first)
        .order_by(models.TrialModel.number)
    ).all()
    made, params_rows, values, steps, attrs = [], [], [], [], []
    for trial_id, number in ids:
        params = _params(rng)
        final = 0.05 + abs(math.log10(params["lr"]) + 2.5) * 0.25
        curve = [final + (2.3 - final) * math.exp(-0.4 * e) for e in range(epochs + 1)]
        made.append((trial_id, number, params, curve))
        params_rows += [
            {
                "trial_id": trial_id,
                "param_name": k,
                "param_value": DISTRIBUTIONS[k].to_internal_repr(v),
            }
            | {"distribution_json": distribution_to_json(DISTRIBUTIONS[k])}
            for k, v in params.items()
        ]
        values.append(
            {"trial_id": trial_id, "objective": 0, "value": final, "value_type": "FINITE"}
        )
        steps += [
            {"trial_id": trial_id, "step": e, "intermediate_value": v}
            | {"intermediate_value_type": "FINITE"}
            for e, v in enumerate(curve)
        ]
        attrs.append({"trial_id": trial_id, "key": SLOT_ATTR, "value_json": str(number)})
    for model, all_rows in (
        (models.TrialParamModel, params_rows),
        (models.TrialValueModel, values),
        (models.TrialIntermediateValueModel, steps),
        (models.TrialSystemAttributeModel, attrs),
    ):
        for chunk in _chunks(all_rows):
            session.execute(insert(model), chunk)
    return made


def grow_hps_study(session: Session, *, study_id: int, optuna_study_id: int, count: int,
                   epochs: int) -> None:  # fmt: skip
    """``count`` finished trials on both sides of an hpsearch study: its budget counters
    move on as if a worker had claimed and ended each (call it with no trial running)."""
    made = add_finished_trials(
        session, optuna_study_id=optuna_study_id, count=count, epochs=epochs, seed=study_id
    )
    study = session.get(store.StudyRow, study_id)
    assert study is not None and study.running == 0
    seq, now = study.change_seq, store.utcnow()
    rows = [
        {
            "study_id": study_id,
            "number": number,
            "slot": number,
            "optuna_trial_id": trial_id,
            "state": store.T_COMPLETE,
            "value": curve[-1],
            "params": params,
            "metrics": {"initial_loss": curve[0], "train_loss": curve[-1], "dev_loss": curve[-1]},
            "curves": {"train_loss": curve, "dev_loss": curve, "dev_accuracy": [None] * len(curve)},
            "epochs_run": epochs,
            "duration_s": 0.01,
            "initial_loss": curve[0],
            "started_at": now,
            "finished_at": now,
            "heartbeat_at": now,
            "seq": seq + i + 1,
        }
        for i, (trial_id, number, params, curve) in enumerate(made)
    ]
    for chunk in _chunks(rows):
        session.execute(insert(store.TrialRow), chunk)
    session.execute(
        update(store.StudyRow)
        .where(store.StudyRow.id == study_id)
        .values(claimed=store.StudyRow.claimed + count, change_seq=seq + count)
    )


__all__ = ["DISTRIBUTIONS", "add_finished_trials", "grow_hps_study"]
