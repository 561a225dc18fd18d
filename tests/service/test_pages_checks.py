"""The initial-loss warning and early stopping on the API (trials, leaderboard, trial,
study's best) and the study and trial pages (SQLite and PostgreSQL), from made-up trials."""

from __future__ import annotations

import math

from fastapi.testclient import TestClient
from sqlalchemy import update

from search import store
from tests.study_data import Made, make_study, params

HTML = {"Accept": "text/html"}
LN10 = math.log(10)


def test_checks_on_api_and_pages(module_client: TestClient) -> None:
    factory = module_client.app.state.session_factory  # type: ignore[attr-defined]
    sid = make_study(
        factory, [Made("COMPLETE", 0.1, params(0.01)), Made("COMPLETE", 0.9, params(0.02))]
    )
    rows = {
        0: {"initial_loss": 2.2, "stopped_early_at": 7, "best_epoch": 4},
        1: {"initial_loss": 41.5},  # 18x ln(10): bad init or unnormalised inputs
    }
    with store.session_scope(factory) as s:
        for number, values in rows.items():
            s.execute(
                update(store.TrialRow)
                .where(store.TrialRow.study_id == sid, store.TrialRow.number == number)
                .values(expected_initial_loss=LN10, **values)
            )
    api = f"/api/v1/studies/{sid}"
    listed = {t["number"]: t for t in module_client.get(f"{api}/trials").json()["data"]}
    board = {t["number"]: t for t in module_client.get(f"{api}/leaderboard").json()["data"]}
    detail = {n: module_client.get(f"{api}/trials/{n}").json() for n in (0, 1)}
    for view in (listed, board, detail):
        assert view[0]["initial_loss_off"] is False and view[1]["initial_loss_off"] is True
        assert (view[0]["stopped_early_at"], view[0]["best_epoch"]) == (7, 4)
        assert view[1]["stopped_early_at"] is None
        assert view[1]["initial_loss"] == 41.5 and view[1]["expected_initial_loss"] == LN10
    best = module_client.get(api).json()["best"]
    assert (best["number"], best["stopped_early_at"], best["initial_loss_off"]) == (0, 7, False)

    page = module_client.get(f"/studies/{sid}", headers=HTML).text
    assert page.count("stopped early at epoch 7") == 1
    assert page.count("initial loss far off") == 1
    first = module_client.get(f"/studies/{sid}/trials/0", headers=HTML).text
    assert "stopped early at epoch 7; kept epoch 4" in first and "far off" not in first
    second = module_client.get(f"/studies/{sid}/trials/1", headers=HTML).text
    assert "far off: check the weight init and input scaling" in second
    assert "early stopping" not in second
