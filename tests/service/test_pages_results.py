"""The held-out test result and the bias/variance reading on the API and the pages (SQLite
and PostgreSQL), from made-up trials."""

from __future__ import annotations

from fastapi.testclient import TestClient

from search import store
from tests.study_data import Made, make_study, params

HTML = {"Accept": "text/html"}
OVERFIT = {"train_error": 0.0, "dev_error": 0.3, "baseline_error": 0.5, "dev_accuracy": 0.7}
FINE = {"train_error": 0.02, "dev_error": 0.05, "baseline_error": 0.5, "dev_accuracy": 0.95}


def test_test_result_and_diagnosis_on_api_and_pages(module_client: TestClient) -> None:
    factory = module_client.app.state.session_factory  # type: ignore[attr-defined]
    sid = make_study(
        factory,
        [
            Made("COMPLETE", 0.1, params(0.01), metrics=FINE),
            Made("COMPLETE", 0.9, params(0.02), metrics=OVERFIT),
        ],
    )
    study = module_client.get(f"/api/v1/studies/{sid}").json()
    assert study["test"] == {
        "state": "pending",
        "trial": None,
        "metrics": None,
        "label": "held-out test set (scored once on the winner; never used to choose)",
    }
    assert study["best"]["diagnosis"]["label"] == "fine"
    page = module_client.get(f"/studies/{sid}", headers=HTML).text
    assert "Held-out test set" in page and "Not yet" in page
    with store.session_scope(factory) as s:
        s.execute(
            store.StudyRow.__table__.update()  # type: ignore[attr-defined]
            .where(store.StudyRow.id == sid)
            .values(status=store.COMPLETED)
        )
        assert store.claim_test(session=s, study_id=sid, stale_after_s=30)
        metrics = {"accuracy": 0.875, "error": 0.125, "n_rows": 40}
        assert store.record_test(
            session=s, study_id=sid, state=store.TEST_DONE, trial_number=0, metrics=metrics
        )
    # Written behind the API's back, as a worker would: it moves the study's version.
    study = module_client.get(f"/api/v1/studies/{sid}").json()
    assert study["test"]["state"] == "done" and study["test"]["metrics"]["accuracy"] == 0.875
    board = module_client.get(f"/api/v1/studies/{sid}/leaderboard").json()
    assert [r["diagnosis"]["label"] for r in board["data"]] == ["fine", "high variance"]
    assert board["test"] == study["test"]
    page = module_client.get(f"/studies/{sid}", headers=HTML).text
    assert "test accuracy" in page and "0.875" in page and "never used to choose" in page
    assert f'href="/api/v1/studies/{sid}/model"' in page
    trial = module_client.get(f"/api/v1/studies/{sid}/trials/1").json()
    assert trial["diagnosis"]["label"] == "high variance"
    assert trial["diagnosis"]["gap"] == 0.3
    trial_page = module_client.get(f"/studies/{sid}/trials/1", headers=HTML).text
    assert "Bias and variance" in trial_page and "high variance" in trial_page
    assert "a lower keep_prob (more dropout)" in trial_page
