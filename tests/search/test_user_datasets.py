"""Uploaded tables train end to end in-process (real database, Optuna, training): string
labels and categorical columns, regression with RMSE and R^2, the best few weights kept,
the winner scored once on the test split, and the test split never choosing the winner."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from models import Table, builtin_table, load_dataset, read_model, split_table
from search import store
from search.datasets import Upload, ingest_dataset
from search.spec import ExperimentSpec
from search.studies import create_study
from search.winner import score_predictions
from search.worker import Worker, WorkerOptions
from service.app import create_app
from service.settings import Settings
from tests.tabular_data import classification_frame, csv_bytes, regression_frame, small_spec


def _ingest(url: str, frame: pd.DataFrame, target: str, name: str) -> int:
    upload = Upload(io.BytesIO(csv_bytes(frame)), f"{name}.csv", target, name=name)
    row, _ = ingest_dataset(session_factory=store.make_session_factory(url), upload=upload)
    return row.id


def _study(url: str, spec: dict[str, Any]) -> int:
    factory = store.make_session_factory(url)
    return create_study(
        session_factory=factory, storage_url=url, spec=ExperimentSpec.model_validate(spec)
    ).id


def _run(url: str) -> None:
    Worker(WorkerOptions(db_url=url, exit_when_idle=True)).run()


def _api(url: str) -> TestClient:
    return TestClient(create_app(Settings(database_url=url), recover=False))


def _test_rows(frame: pd.DataFrame, target: str, task: str) -> pd.DataFrame:
    """The raw rows of the default split's test part, as the worker splits them."""
    from models import feature_kinds

    table = Table(frame, target, task, feature_kinds(frame, target))
    return split_table(table, (0.6, 0.2, 0.2), 0)[2]


def test_categorical_columns_and_string_labels_train(migrated_url: str) -> None:
    frame = classification_frame()
    _ingest(migrated_url, frame, "animal", "pets")
    sid = _study(migrated_url, small_spec("pets", "pets", metric="dev_accuracy"))
    _run(migrated_url)
    with _api(migrated_url) as api:
        study = api.get(f"/api/v1/studies/{sid}").json()
        board = api.get(f"/api/v1/studies/{sid}/leaderboard").json()
        download = api.get(f"/api/v1/studies/{sid}/model")
    assert study["status"] == "completed" and study["counts"]["complete"] == 4
    assert board["task"] == "classification" and board["data"][0]["value"] > 0.8
    assert board["data"][0]["diagnosis"]["label"] in ("fine", "high bias", "high variance")
    test = study["test"]
    assert test["state"] == "done" and test["trial"] == study["best"]["number"]
    assert download.status_code == 200
    model = read_model(download.content)
    assert model.classes == ["bird", "cat", "dog"]
    assert model.config["test"]["metrics"] == test["metrics"]
    rows = _test_rows(frame, "animal", "classification")
    predicted = model(rows.drop(columns=["animal"]))
    assert set(predicted) <= {"bird", "cat", "dog"}
    accuracy = float(np.mean(predicted == rows["animal"].to_numpy()))
    assert accuracy == pytest.approx(test["metrics"]["accuracy"], abs=1e-6)
    # A colour never seen in training maps to all zeros; the model still answers.
    odd = rows.drop(columns=["animal"]).head(2).assign(colour="purple")
    assert len(model(odd)) == 2


def test_regression_reports_rmse_and_r2(sqlite_url: str) -> None:
    from service.runner import upgrade_db

    upgrade_db(sqlite_url)
    frame = regression_frame()
    _ingest(sqlite_url, frame, "price", "houses")
    spec = small_spec("houses", "houses", metric="dev_rmse")
    spec["training"] |= {"epochs": 40}
    sid = _study(sqlite_url, spec)
    _run(sqlite_url)
    with _api(sqlite_url) as api:
        board = api.get(f"/api/v1/studies/{sid}/leaderboard").json()
        study = api.get(f"/api/v1/studies/{sid}").json()
        model = read_model(api.get(f"/api/v1/studies/{sid}/model").content)
    best = board["data"][0]
    assert board["task"] == "regression" and board["direction"] == "minimize"
    assert best["value"] == best["metrics"]["dev_rmse"] and 0 < best["value"] < 10
    assert best["metrics"]["dev_r2"] > 0.5 and "dev_accuracy" not in best["metrics"]
    metrics = study["test"]["metrics"]
    assert metrics["rmse"] > 0 and metrics["r2"] > 0.5
    rows = _test_rows(frame, "price", "regression")
    predicted = model(rows.drop(columns=["price"]))
    rmse = float(np.sqrt(np.mean((predicted - rows["price"].to_numpy()) ** 2)))
    assert rmse == pytest.approx(metrics["rmse"], abs=1e-6)


def test_only_the_best_few_weights_are_kept(sqlite_url: str) -> None:
    from service.runner import upgrade_db

    upgrade_db(sqlite_url)
    spec = small_spec("iris", "iris", n_trials=6)
    spec["training"] |= {"epochs": 2}
    sid = _study(sqlite_url, spec)
    _run(sqlite_url)
    factory = store.make_session_factory(sqlite_url)
    with store.session_scope(factory) as s:
        study = store.get_study(session=s, study_id=sid)
        top = store.leaderboard(session=s, study=study, top=3)
        kept = store.kept_numbers(session=s, study_id=sid)
        assert study.test_state == store.TEST_DONE and study.test_trial == top[0].trial.number
    assert sorted(kept) == sorted(e.trial.number for e in top)


def test_a_cancelled_study_scores_its_winner(sqlite_url: str) -> None:
    from service.runner import upgrade_db

    upgrade_db(sqlite_url)
    spec = small_spec("iris", "iris", n_trials=50)
    spec["training"] |= {"epochs": 2}
    sid = _study(sqlite_url, spec)
    Worker(WorkerOptions(db_url=sqlite_url, max_trials=2)).run()
    factory = store.make_session_factory(sqlite_url)
    with store.session_scope(factory) as s:
        assert store.cancel_study(session=s, study_id=sid)
    _run(sqlite_url)
    with _api(sqlite_url) as api:
        study = api.get(f"/api/v1/studies/{sid}").json()
    assert study["status"] == "cancelled" and study["counts"]["complete"] == 2
    assert study["test"]["state"] == "done" and study["test"]["trial"] == study["best"]["number"]
    assert 0 <= study["test"]["metrics"]["accuracy"] <= 1


def test_test_rows_never_choose_the_winner(sqlite_url: str) -> None:
    """Two uploads differing only in the test rows' features: the same winner with the
    same dev metrics; only its test metric moves."""
    from service.runner import upgrade_db

    upgrade_db(sqlite_url)
    frame = classification_frame(n=210)
    test_index = _test_rows(frame, "animal", "classification").index
    shuffled = frame.copy()
    rng = np.random.default_rng(1)
    for col in ("x1", "x2", "colour"):
        shuffled.loc[test_index, col] = rng.permutation(frame.loc[test_index, col].to_numpy())
    assert (shuffled["animal"] == frame["animal"]).all()
    results = []
    for name, table in (("original", frame), ("changed", shuffled)):
        _ingest(sqlite_url, table, "animal", name)
        sid = _study(sqlite_url, small_spec(name, name, metric="dev_accuracy", n_trials=5))
        _run(sqlite_url)
        with _api(sqlite_url) as api:
            study = api.get(f"/api/v1/studies/{sid}").json()
            board = api.get(f"/api/v1/studies/{sid}/leaderboard", params={"top": 5}).json()
        results.append((study, board))
    (a, board_a), (b, board_b) = results
    assert a["best"]["number"] == b["best"]["number"]
    assert [(r["number"], r["value"], r["metrics"]) for r in board_a["data"]] == [
        (r["number"], r["value"], r["metrics"]) for r in board_b["data"]
    ]
    assert a["test"]["trial"] == b["test"]["trial"]
    assert a["test"]["metrics"]["accuracy"] != b["test"]["metrics"]["accuracy"]


def test_score_predictions() -> None:
    labels = pd.Series(["a", "b", "b", "a"])
    assert score_predictions("classification", np.array(["a", "b", "a", "a"]), labels) == {
        "accuracy": 0.75, "error": 0.25, "n_rows": 4,
    }  # fmt: skip
    scores = score_predictions("regression", np.array([1.0, 2.0, 3.0]), pd.Series([1.0, 2.0, 5.0]))
    assert scores["rmse"] == pytest.approx(np.sqrt(4 / 3))
    assert scores["r2"] == pytest.approx(1 - 4 / (78 / 9))  # SST around the mean 8/3


def test_builtin_data_goes_through_the_same_preparation() -> None:
    data = load_dataset("wine")
    table = builtin_table("wine")
    train = split_table(table, (0.6, 0.2, 0.2), 0)[0]
    assert data.preparation is not None
    expected = data.preparation.transform(train)
    assert np.array_equal(expected, data.train_x.numpy())
    assert data.train_x.mean(dim=0).abs().max() < 1e-5


MANUAL = Path(__file__).resolve().parents[2] / "docs" / "data-and-models.md"


def manual_loading_lines() -> str:
    """The manual's five lines that load a downloaded model and predict."""
    text = MANUAL.read_text(encoding="utf-8")
    block = text.split("## Take the model away", 1)[1].split("```python\n", 1)[1]
    code = block.split("```", 1)[0]
    assert len([line for line in code.splitlines() if line.strip()]) == 5, code
    return code


def test_the_downloaded_model_loads_as_the_manual_says(sqlite_url: str, tmp_path: Path) -> None:
    """In a fresh process that imports no Optuna, SQLAlchemy or FastAPI, the manual's
    lines (docs/data-and-models.md) reproduce the stored test metric on the test rows."""
    from service.runner import upgrade_db

    upgrade_db(sqlite_url)
    frame = classification_frame()
    _ingest(sqlite_url, frame, "animal", "pets")
    sid = _study(sqlite_url, small_spec("pets", "pets", metric="dev_accuracy"))
    _run(sqlite_url)
    with _api(sqlite_url) as api:
        metrics = api.get(f"/api/v1/studies/{sid}").json()["test"]["metrics"]
        (tmp_path / "model.zip").write_bytes(api.get(f"/api/v1/studies/{sid}/model").content)
    rows = _test_rows(frame, "animal", "classification")
    rows.drop(columns=["animal"]).to_csv(tmp_path / "rows.csv", index=False)
    code = manual_loading_lines()
    code = code.replace("study-1-trial-3.hpsmodel.zip", "model.zip").replace(
        "new_rows.csv", "rows.csv"
    )
    code += (
        "import json, sys\n"
        "heavy = [m for m in ('optuna', 'sqlalchemy', 'fastapi') if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'predicted': [str(p) for p in model(rows)]}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["heavy"] == []
    accuracy = float(np.mean(np.array(answer["predicted"]) == rows["animal"].to_numpy()))
    assert accuracy == pytest.approx(metrics["accuracy"], abs=1e-6)


def test_imputed_uploads_train_and_fill_new_rows(sqlite_url: str) -> None:
    from service.runner import upgrade_db

    upgrade_db(sqlite_url)
    frame = regression_frame()
    frame.loc[[3, 40, 77], "x1"] = np.nan
    frame.loc[[5, 90], "size"] = None
    upload = Upload(io.BytesIO(csv_bytes(frame)), "holes.csv", "price", impute=True)
    row, _ = ingest_dataset(session_factory=store.make_session_factory(sqlite_url), upload=upload)
    assert row.impute and [c["missing"] for c in row.summary["columns"]] == [3, 0, 2]
    sid = _study(sqlite_url, small_spec("holes", row.id, metric="dev_rmse"))
    _run(sqlite_url)
    with _api(sqlite_url) as api:
        study = api.get(f"/api/v1/studies/{sid}").json()
        model = read_model(api.get(f"/api/v1/studies/{sid}/model").content)
    assert study["counts"]["complete"] == 4 and study["test"]["state"] == "done"
    fill = model.preparation.numeric["x1"][2]
    train = split_table(Table(frame, "price", "regression", {}), (0.6, 0.2, 0.2), 0)[0]
    assert fill == pytest.approx(float(np.nanmedian(train["x1"])))  # training rows only
    new = pd.DataFrame({"x1": [np.nan, 0.5], "x2": [0.1, 0.1], "size": [None, "XL"]})
    predicted = model(new)
    assert predicted.shape == (2,) and np.isfinite(predicted).all()


def test_the_divergence_rule_applies_to_dev_rmse() -> None:
    from models import EpochMetrics
    from search.judging import LocalJudge
    from search.trial_runner import Progress

    progress = Progress("dev_rmse")
    judge = LocalJudge(progress, factor=3.0, minimize=True)
    for epoch, rmse in enumerate([10.0, 12.0, 29.0, 31.0]):
        value = progress.add(EpochMetrics(epoch, 1.0, 1.0, None, dev_rmse=rmse, dev_r2=0.0))
        verdict = judge(epoch, value)
        assert verdict == ("diverged" if rmse > 30.0 else None), (epoch, rmse)
    assert progress.snapshot()["curves"]["dev_rmse"] == [10.0, 12.0, 29.0, 31.0]
