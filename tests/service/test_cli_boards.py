"""How the CLI renders a leaderboard by task, the held-out test line and the bias/variance
reading."""

from __future__ import annotations

import io

from rich.console import Console

from service._cli_boards import diagnosis_lines, held_out_line, leaderboard_table


def _text(board: dict) -> str:
    out = io.StringIO()
    Console(file=out, width=200).print(leaderboard_table(board))
    return out.getvalue()


ROW = {
    "rank": 1,
    "number": 2,
    "state": "COMPLETE",
    "value": 3.5,
    "params": {"lr": 0.01},
    "epochs_run": 8,
    "duration_s": 0.5,
}


def test_regression_boards_show_rmse_and_r2_and_the_reading() -> None:
    metrics = {"dev_rmse": 3.5, "dev_r2": 0.91, "dev_loss": 0.2, "train_error": 1.0}
    diagnosis = {"label": "high variance", "remedies": ["more training data"]}
    board = {
        "study_id": 4,
        "metric": "dev_rmse",
        "direction": "minimize",
        "task": "regression",
        "data": [ROW | {"metrics": metrics, "diagnosis": diagnosis}],
    }
    text = _text(board)
    assert "dev_r2" in text and "0.91" in text and "high variance" in text
    assert "dev_accuracy" not in text and "train_error" not in text
    assert text.count("dev_rmse") == 2  # the objective column and the caption only


def test_classification_boards_show_accuracy() -> None:
    metrics = {"dev_accuracy": 0.97, "dev_loss": 0.1, "dev_rmse": None}
    board = {"study_id": 4, "metric": "dev_loss", "task": "classification", "data": []}
    board["data"] = [ROW | {"metrics": metrics}]
    text = _text(board)
    assert "dev_accuracy" in text and "0.97" in text and "dev_rmse" not in text


def test_held_out_line_is_labelled_and_absent_until_scored() -> None:
    assert held_out_line({"state": "pending", "trial": None, "metrics": None}) is None
    assert held_out_line(None) is None
    line = held_out_line(
        {"state": "done", "trial": 3, "metrics": {"rmse": 2.5, "r2": 0.9, "n_rows": 40}}
    )
    assert line is not None and line.startswith("held-out test set (trial 3")
    assert "never used to choose" in line and "rmse 2.5, r2 0.9 on 40 rows" in line
    failed = held_out_line({"state": "failed", "metrics": {"error": "LookupError: gone"}})
    assert failed == "held-out test set: failed (LookupError: gone)"


def test_diagnosis_lines() -> None:
    d = {"label": "high bias", "train_error": 0.4, "dev_error": 0.41, "baseline_error": 0.5}
    lines = diagnosis_lines(d | {"remedies": ["a bigger network", "train longer"]})
    assert lines[0].startswith("  bias/variance: high bias (train error 0.4")
    assert lines[1:] == ["    try: a bigger network", "    try: train longer"]
    assert diagnosis_lines(None) == []


def test_boards_and_status_flag_initial_loss_and_early_stopping() -> None:
    from service._cli_boards import checks_text

    off = {"initial_loss": 41.5, "expected_initial_loss": 2.302585, "initial_loss_off": True}
    early = {"stopped_early_at": 7, "best_epoch": 4, "initial_loss_off": False}
    board = {"study_id": 4, "metric": "dev_loss", "task": "classification", "data": []}
    board["data"] = [ROW | off, ROW | {"rank": 2, "number": 3} | early]
    text = _text(board)
    assert "checks" in text and "initial loss 41.5 far from 2.30259" in text
    assert "stopped early at epoch 7 (kept epoch 4)" in text
    assert checks_text(ROW | {"initial_loss": 2.1, "initial_loss_off": False}) == ""
    plain = {"study_id": 4, "metric": "dev_loss", "task": "classification", "data": [ROW]}
    assert "checks" not in _text(plain)


def test_boards_of_your_own_code_show_what_it_reported(capsys) -> None:
    from service._cli_boards import held_out_of, write_leaderboard_csv

    metrics = {"loss": 0.3, "val_auc": 0.9, "lr": 0.01, "val_loss": 0.28}
    board = {
        "study_id": 5,
        "metric": "val_auc",
        "direction": "maximize",
        "task": "external",
        "data": [ROW | {"metrics": metrics}, ROW | {"rank": 2, "metrics": {"zeta": 1.0}}],
        "test": {"state": "none", "trial": None, "metrics": None},
    }
    text = _text(board)
    head = next(line for line in text.splitlines() if "trial" in line).split()
    # first seen first (not sorted, not a task's list); a metric named like a parameter says so
    assert head[4:9] == ["loss", "lr", "(metric)", "val_loss", "zeta"]
    assert held_out_of(board) is None  # no held-out test set here
    write_leaderboard_csv(board)
    header = capsys.readouterr().out.splitlines()[0]
    assert header == "rank,number,value,lr,loss,metric:lr,val_loss,zeta,epochs_run,duration_s"
