"""Every read of a study of the user's own code (``model: external``), driven through the real
REST trial API on a real database (SQLite and PostgreSQL): the table's JSON and CSV twins
with the reported metrics as columns, sorting by a reported metric, plot data, the study,
trial, list and compare pages, and the CLI's renderings of the same JSON."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from fastapi.testclient import TestClient
from rich.console import Console

from search.spec import EXTERNAL_TASK
from service import own_code
from service._cli_boards import leaderboard_table
from service._cli_studies import status_lines, studies_table
from service.app import create_app
from service.schemas import StudyPlots
from service.settings import Settings
from tests.own_code_data import (
    COMPLETE,
    EPOCHS,
    FAIL_REASON,
    FAILED,
    LOG,
    METRIC_COLUMNS,
    PRUNED,
    RUNNING,
    SPEC,
    Driven,
    auc,
    client_name,
    curve,
    drive,
    val_loss,
)
from tests.service.auth_helpers import bearer, make_keys

BEST_FIRST = sorted(COMPLETE, reverse=True)  # val_auc rises with the trial number


@pytest.fixture(scope="module")
def client(module_client: TestClient) -> TestClient:
    return module_client


@pytest.fixture(scope="module")
def study(client: TestClient) -> Driven:
    return drive(client)


def trials(client: TestClient, sid: int, **params: object) -> list[dict]:
    r = client.get(f"/api/v1/studies/{sid}/trials", params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def test_the_study_reads_as_your_code(client: TestClient, study: Driven) -> None:
    assert own_code.EXTERNAL_TASK == EXTERNAL_TASK  # the CLI's copy of the fact
    s = client.get(f"/api/v1/studies/{study.study_id}").json()
    assert (s["task"], s["dataset"], s["dataset_id"]) == ("external", "", None)
    assert s["counts"] == {"running": 1, "complete": 11, "pruned": 1, "fail": 1}
    assert s["best"]["number"] == 10 and s["best"]["value"] == auc(10)
    assert s["test"]["state"] == "none" and "your own code" in s["test"]["label"]
    model = client.get(f"/api/v1/studies/{study.study_id}/model")
    assert model.status_code == 404 and "your own code" in model.json()["detail"]


def test_the_table_json_and_csv_carry_the_reported_metrics(
    client: TestClient, study: Driven
) -> None:
    rows = trials(client, study.study_id)
    assert [t["number"] for t in rows] == [*BEST_FIRST, PRUNED, FAILED, RUNNING]
    assert [t["rank"] for t in rows] == [*range(1, 12), None, None, None]
    best = rows[0]
    assert best["metrics"] == {"loss": 0.3, "val_auc": auc(10), "lr": 0.01, "val_loss": 0.3}
    assert best["params"] == study.params[10]
    assert rows[-1]["metrics"] == {"loss": 0.9, "val_auc": 0.55, "grad_norm": 2.0}
    r = client.get(f"/api/v1/studies/{study.study_id}/trials.csv")
    assert r.status_code == 200, r.text
    table = list(csv.reader(io.StringIO(r.text)))
    # A reported metric named like a parameter keeps both apart: param:lr and metric:lr.
    assert table[0] == [
        "rank", "number", "val_auc", "param:lr", "width", "act", "hidden",
        "loss", "metric:lr", "val_loss",
        "epochs_run", "duration_s", "state", "reason", "started_at", "finished_at",
    ]  # fmt: skip
    by_name = [dict(zip(table[0], line, strict=True)) for line in table[1:]]
    assert [int(line["number"]) for line in by_name] == [t["number"] for t in rows]
    for line, t in zip(by_name, rows, strict=True):
        assert float(line["param:lr"]) == t["params"]["lr"]
        assert line["hidden"] == "-".join(str(u) for u in t["params"]["hidden"])
        for name in METRIC_COLUMNS:
            cell = line["metric:lr" if name == "lr" else name]
            assert (float(cell) if cell else None) == t["metrics"].get(name)
    assert by_name[-3]["reason"] == "diverged" and by_name[-2]["reason"] == FAIL_REASON


@pytest.mark.parametrize("desc", [False, True])
def test_sorting_by_a_reported_metric(client: TestClient, study: Driven, desc: bool) -> None:
    reported = [n for n in COMPLETE if val_loss(n) is not None]
    ordered = sorted(reported, key=lambda n: val_loss(n) or 0.0, reverse=desc)
    missing = [0, PRUNED, FAILED, RUNNING]  # last, by number, either way
    query = {"sort": "metric:val_loss", "desc": desc}
    assert [t["number"] for t in trials(client, study.study_id, **query)] == ordered + missing
    text = client.get(f"/api/v1/studies/{study.study_id}/trials.csv", params=query).text
    assert [int(r["number"]) for r in csv.DictReader(io.StringIO(text))] == ordered + missing
    html = client.get(f"/studies/{study.study_id}", params=query).text
    assert re.findall(r'<tr data-number="(\d+)"', html) == [str(n) for n in ordered + missing]
    by_loss = trials(client, study.study_id, sort="metric:loss")
    losses = [t["metrics"]["loss"] for t in by_loss]
    assert losses == sorted(losses)


@pytest.mark.parametrize("name", ["dev_accuracy", "grad_norm_x", "epoch"])
def test_an_unknown_metric_sort_is_a_422_naming_the_field(
    client: TestClient, study: Driven, name: str
) -> None:
    sid = study.study_id
    r = client.get(f"/api/v1/studies/{sid}/trials", params={"sort": f"metric:{name}"})
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == ["query", "sort"]
    assert f"unknown metric {name!r}" in error["msg"]
    assert "['val_auc', 'loss', 'lr', 'val_loss']" in error["msg"]  # what it may sort by
    csv_r = client.get(f"/api/v1/studies/{sid}/trials.csv", params={"sort": f"metric:{name}"})
    assert csv_r.status_code == 422
    page = client.get(f"/studies/{sid}", params={"sort": f"metric:{name}"})
    assert page.status_code == 422 and "unknown metric" in page.text


def test_leaderboard_changes_and_one_trial(client: TestClient, study: Driven) -> None:
    sid = study.study_id
    board = client.get(f"/api/v1/studies/{sid}/leaderboard", params={"top": 3}).json()
    assert (board["task"], board["metric"], board["direction"]) == (
        "external",
        "val_auc",
        "maximize",
    )
    assert [b["number"] for b in board["data"]] == BEST_FIRST[:3]
    assert board["data"][0]["metrics"]["val_loss"] == val_loss(10)
    changes = client.get(f"/api/v1/studies/{sid}/changes").json()
    assert [t["number"] for t in changes["finished"]] == list(range(RUNNING))
    assert [t["metrics"] for t in changes["running"]] == [
        {"loss": 0.9, "val_auc": 0.55, "grad_norm": 2.0}
    ]
    failed = client.get(f"/api/v1/studies/{sid}/trials/{FAILED}").json()
    assert (failed["state"], failed["prune_reason"]) == ("FAIL", FAIL_REASON)
    assert failed["client"] == client_name(FAILED) and failed["log"] == LOG
    best = client.get(f"/api/v1/studies/{sid}/trials/10").json()
    assert best["client"] == client_name(10) and best["log"] is None
    assert best["curves"] == {"epoch": EPOCHS, **curve(10)}


def test_plot_data_draws_what_was_reported(client: TestClient, study: Driven) -> None:
    r = client.get(f"/api/v1/studies/{study.study_id}/plots")
    assert r.status_code == 200, r.text
    raw = r.json()
    data = StudyPlots.model_validate(raw).model_dump()  # the documented shape
    assert raw["loss_metric"] == "loss" and data["metric"] == "val_auc"
    assert data["points"]["number"] == list(range(RUNNING))
    assert data["points"]["state"] == ["C"] * 11 + ["P", "F"]
    assert [a["name"] for a in data["axes"]] == [
        "lr",
        "width",
        "act",
        "hidden.depth",
        "hidden.units",
    ]
    curves = {c["number"]: c for c in raw["curves"]}
    assert list(curves) == [*sorted(BEST_FIRST[:5]), PRUNED, RUNNING]  # by number
    best = curves[10]
    assert best["epoch"] == EPOCHS and best["objective"] == curve(10)["val_auc"]
    assert best["train_loss"] == curve(10)["loss"] and best["dev_loss"] == []
    pruned = curves[PRUNED]
    assert pruned["epoch"] == [0, 1] and pruned["train_loss"] == [1.0, 3.5]
    assert pruned["objective"] == [0.5, None] and pruned["threshold"] == 3.0
    assert pruned["reason"] == "diverged" and pruned["value"] == 0.5
    assert curves[RUNNING]["epoch"] == [0] and "others" not in curves[RUNNING]
    importance = client.get(f"/api/v1/studies/{study.study_id}/importance").json()
    assert importance["complete"] == 11 and len(importance["data"]) == 5


def test_the_study_page(client: TestClient, study: Driven) -> None:
    sid = study.study_id
    html = client.get(f"/studies/{sid}").text
    assert '<p class="subtitle">your code · random sampler · maximize val_auc' in html
    heads = re.findall(r'title="sort by ([^"]+)"', html)
    assert heads == [
        "rank", "trial", "val_auc", "lr", "width", "act", "hidden",
        "loss", "lr (metric)", "val_loss", "epochs", "time", "state", "reason",
    ]  # fmt: skip
    assert "grad_norm" not in heads  # reported by the running trial only, so far
    spec = html.split("<pre><code>")[1].split("</code></pre>")[0]
    assert "model: external" in spec and "loss_metric: loss" in spec
    assert "null" not in spec and "dataset" not in spec and "training" not in spec
    assert "Download the best model" not in html and "Held-out test set" not in html
    assert "divergence limits (3.0 × first reported loss)" in html
    columns = re.search(r'data-columns="([^"]+)"', html)
    assert columns is not None
    live = client.get(f"/studies/{sid}/live", params={"cursor": 0}).json()
    assert live["columns"] == columns.group(1)
    assert "Held-out" not in live["header_html"]
    assert [r["number"] for r in live["rows"]] == list(range(RUNNING + 1))
    assert {c["number"]: c["epoch"] for c in live["curves"]}[RUNNING] == [0]


def test_the_trial_pages(client: TestClient, study: Driven) -> None:
    sid = study.study_id
    failed = client.get(f"/studies/{sid}/trials/{FAILED}").text
    assert FAIL_REASON in failed and client_name(FAILED) in failed
    log = failed.split('<pre class="log"><code>')[1].split("</code></pre>")[0]
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in log
    assert log.count("\n") == 300 and "<script>alert" not in failed
    for built_in_only in ("worker", "device", "initial loss", "Bias and variance"):
        assert f">{built_in_only}<" not in failed
    best = client.get(f"/studies/{sid}/trials/10").text
    assert "3 reports, the last at epoch 10" in best and 'id="trial-log"' not in best
    assert "Every other metric, by epoch" in best
    data = json.loads(best.split('id="trial-data">')[1].split("</script>")[0])
    assert data["loss_metric"] == "loss" and data["metric"] == "val_auc"
    assert data["curves"][0]["others"] == {"lr": curve(10)["lr"]}
    pruned = client.get(f"/studies/{sid}/trials/{PRUNED}").text
    assert "divergence limit (3.0 × first reported loss = 3)" in pruned
    assert "Every other metric, by epoch" not in pruned


def test_list_and_compare_say_your_code(client: TestClient, study: Driven) -> None:
    sid = study.study_id
    listed = client.get("/").text
    row = listed.split(f'<tr data-study="{sid}">')[1].split("</tr>")[0]
    assert "<td>your code</td>" in row
    page = client.get("/compare", params={"ids": str(sid)}).text
    assert '<th scope="row">dataset</th><td class="num">your code</td>' in page
    series = client.get("/api/v1/compare", params={"ids": str(sid)}).json()["data"]
    assert series[0]["number"] == COMPLETE and series[0]["best"][-1] == auc(10)


def test_the_cli_renders_the_same_json(client: TestClient, study: Driven) -> None:
    sid = study.study_id
    out = io.StringIO()
    board = client.get(f"/api/v1/studies/{sid}/leaderboard", params={"top": 3}).json()
    Console(file=out, width=250).print(leaderboard_table(board))
    head = next(line for line in out.getvalue().splitlines() if "trial" in line).split()
    # Parameters by name, then the reported metrics first seen first; lr is both.
    assert head == [
        "#", "trial", "val_auc", "act", "hidden", "lr", "width",
        "loss", "lr", "(metric)", "val_loss", "epochs", "time", "(s)",
    ]  # fmt: skip
    lines = status_lines(client.get(f"/api/v1/studies/{sid}").json())
    assert lines[1] == "your code · sampler random · maximize val_auc"
    assert lines[3] == f"best: trial 10 value {auc(10):g}"
    assert not any("held-out" in line for line in lines)
    out = io.StringIO()
    Console(file=out, width=250).print(studies_table(client.get("/api/v1/studies").json()))
    assert re.search(rf"\s{sid}\s+own-code-reads\s+running\s+your code\s+random\s", out.getvalue())


def test_a_study_of_your_code_is_cancelled_like_any(client: TestClient) -> None:
    r = client.post("/api/v1/studies", json=SPEC | {"name": "own-code-cancel"})
    sid = int(r.json()["id"])
    assert client.post(f"/api/v1/studies/{sid}/trials/claim", json={}).status_code == 200
    r = client.post(f"/api/v1/studies/{sid}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    claim = client.post(f"/api/v1/studies/{sid}/trials/claim", json={})
    assert claim.status_code == 409
    html = client.get(f"/studies/{sid}").text
    assert "badge-cancelled" in html and "Cancel study" not in html
    assert client.post(f"/api/v1/studies/{sid}/cancel").status_code == 409


def test_only_its_owner_reads_a_study_of_your_code(migrated_url: str) -> None:
    app = create_app(Settings(database_url=migrated_url, auth="on"), recover=False)
    keys = make_keys(migrated_url)
    alice, bob = bearer(keys.alice), bearer(keys.bob)
    with TestClient(app, follow_redirects=False) as c:
        sid = drive(c, headers=alice).study_id
        assert c.get(f"/api/v1/studies/{sid}", headers=alice).json()["owner"] == "alice"
        reads = [
            f"/api/v1/studies/{sid}/trials?sort=metric:val_loss",
            f"/api/v1/studies/{sid}/trials.csv",
            f"/api/v1/studies/{sid}/trials/{FAILED}",
            f"/api/v1/studies/{sid}/plots",
            f"/studies/{sid}",
            f"/studies/{sid}/trials/{FAILED}",
        ]
        for url in reads:
            assert c.get(url, headers=alice).status_code == 200, url
            assert c.get(url, headers=bob).status_code == 404, url
            assert c.get(url).status_code in (303, 401), url  # no key: sign in
        claim = c.post(f"/api/v1/studies/{sid}/trials/claim", json={}, headers=bob)
        assert claim.status_code == 404
        c.patch(f"/api/v1/studies/{sid}", json={"public": True}, headers=alice)
        for url in reads:
            assert c.get(url).status_code == 200, url
        assert c.post(f"/api/v1/studies/{sid}/cancel", headers=bob).status_code == 404
