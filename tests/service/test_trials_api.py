"""The leaderboard's JSON and CSV twins, changes since a cursor, plot data, importance and
compare, on a real database (SQLite and PostgreSQL) through the ASGI app."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from search import store
from service.csv_cells import csv_cell
from service.schemas import StudyPlots
from tests.study_data import Made, make_study, params

TRIALS = [
    Made("COMPLETE", 0.50 + i / 100, params(10 ** (-4 + i / 4), 0.5 + i / 40, [16 * (1 + i % 3)]))
    for i in range(12)
]
TRIALS[3] = Made("PRUNED", 4.0, params(0.9), reason="diverged", epochs=1)
TRIALS[5] = Made("FAIL", None, params(0.5), reason='=HYPERLINK("http://x")', epochs=0)
TRIALS[7] = Made("PRUNED", 1.5, params(0.2), reason="@SUM(1+1)", epochs=2)


@pytest.fixture(scope="module")
def client(module_client: TestClient) -> TestClient:
    return module_client


@pytest.fixture(scope="module")
def sid(module_migrated_url: str) -> int:
    return make_study(store.make_session_factory(module_migrated_url), TRIALS, running=1)


def test_trials_json_is_the_table_view(client: TestClient, sid: int) -> None:
    r = client.get(f"/api/v1/studies/{sid}/trials", params={"limit": 100})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 13 and body["metric"] == "dev_loss"
    ranks = [row["rank"] for row in body["data"]]
    assert ranks[:9] == list(range(1, 10)) and ranks[9:] == [None] * 4
    board = client.get(f"/api/v1/studies/{sid}/leaderboard", params={"top": 20}).json()["data"]
    assert [(b["number"], b["value"]) for b in board] == [
        (row["number"], row["value"]) for row in body["data"][:9]
    ]
    pruned = client.get(f"/api/v1/studies/{sid}/trials", params={"state": "pruned"}).json()
    assert [row["number"] for row in pruned["data"]] == [3, 7]  # rank sort: unranked by number
    by_lr = client.get(
        f"/api/v1/studies/{sid}/trials", params={"sort": "param:lr", "desc": True, "top": 3}
    ).json()
    lrs = [row["params"]["lr"] for row in by_lr["data"]]
    assert len(lrs) == 3 and lrs == sorted(lrs, reverse=True)


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ({"sort": "param:momentum"}, "no searched parameter 'momentum'"),
        ({"sort": "bogus"}, "must be one of"),
        ({"state": "finished"}, "must be one of"),
        ({"limit": 0}, "limit"),
        ({"top": 10001}, "top"),
        ({"offset": -5}, "offset"),
    ],
)
def test_bad_views_are_422s_naming_the_problem(client: TestClient, sid: int, query, needle) -> None:
    r = client.get(f"/api/v1/studies/{sid}/trials", params=query)
    assert r.status_code == 422 and needle in r.text, r.text
    (error,) = r.json()["detail"]  # FastAPI's shape: the parameter is in loc
    assert error["loc"] == ["query", next(iter(query))]
    assert client.get(f"/api/v1/studies/{sid}/trials.csv", params=query).status_code in (200, 422)


def test_csv_export_parses_matches_the_api_and_defuses_formulas(client: TestClient, sid: int):
    r = client.get(f"/api/v1/studies/{sid}/trials.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    api = client.get(f"/api/v1/studies/{sid}/trials", params={"limit": 100}).json()["data"]
    assert [int(row["number"]) for row in rows] == [t["number"] for t in api]
    for row, t in zip(rows, api, strict=True):
        assert (float(row["dev_loss"]) if row["dev_loss"] else None) == t["value"]
        assert float(row["lr"]) == t["params"]["lr"]  # full precision
        assert row["hidden"] == "-".join(str(u) for u in t["params"]["hidden"])
    reasons = {int(row["number"]): row["reason"] for row in rows}
    assert reasons[5] == '\'=HYPERLINK("http://x")' and reasons[7] == "'@SUM(1+1)"
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values())
    view = client.get(f"/api/v1/studies/{sid}/trials.csv", params={"state": "pruned"}).text
    assert [r["number"] for r in csv.DictReader(io.StringIO(view))] == ["3", "7"]


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+cmd", "'+cmd"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=x", "'\t=x"),
        ("plain", "plain"),
        (-0.5, "-0.5"),  # a number stays a number
        (0.1 + 0.2, "0.30000000000000004"),
        ([128, 64], "128-64"),
        (None, ""),
        (True, "true"),
    ],
)
def test_csv_cells(value, cell: str) -> None:
    assert csv_cell(value) == cell


def test_changes_return_only_what_is_new(client: TestClient, sid: int) -> None:
    first = client.get(f"/api/v1/studies/{sid}/changes").json()
    assert [t["number"] for t in first["finished"]] == list(range(12))
    assert [t["number"] for t in first["running"]] == [12]
    assert first["cursor"] == 12 and first["study"]["id"] == sid
    again = client.get(f"/api/v1/studies/{sid}/changes", params={"cursor": first["cursor"]}).json()
    assert again["finished"] == [] and [t["number"] for t in again["running"]] == [12]
    assert client.get(f"/api/v1/studies/{sid}/changes", params={"cursor": -1}).status_code == 422


def test_plot_data_is_compact_columns(client: TestClient, sid: int) -> None:
    r = client.get(f"/api/v1/studies/{sid}/plots")
    assert r.status_code == 200, r.text
    data = StudyPlots.model_validate(r.json()).model_dump()  # the documented shape
    pts = data["points"]
    assert pts["number"] == list(range(12))
    assert pts["state"][3] == "P" and pts["state"][5] == "F" and pts["value"][5] is None
    assert [a["name"] for a in data["axes"]] == ["lr", "keep_prob", "hidden.depth", "hidden.units"]
    assert data["axes"][0]["log"] is True and data["axes"][3]["log"] is True
    assert pts["axes"]["hidden.units"][1] == 32.0 and pts["labels"]["hidden"][1] == "32"
    numbers = [c["number"] for c in data["curves"]]
    assert numbers == [0, 1, 2, 3, 4, 6, 7, 12]  # best 5, both pruned, the running one
    pruned = next(c for c in data["curves"] if c["number"] == 3)
    assert pruned["threshold"] == pytest.approx(3.0 * 2.3) and pruned["reason"] == "diverged"
    assert data["cursor"] == 12


def test_importance_is_computed_once_per_trial_count(client: TestClient, sid: int) -> None:
    caches = client.app.state.caches  # type: ignore[attr-defined]
    before = caches["importance"].computed if "importance" in caches else 0
    r = client.get(f"/api/v1/studies/{sid}/importance")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["complete"] == 9 and body["min_trials"] == 10 and body["data"] == []
    # Add complete trials until there are enough, in a study of its own.
    many = [Made("COMPLETE", 1.0 / (i + 1), params(10 ** (-4 + i / 6), 0.9)) for i in range(14)]
    url = client.app.state.settings.database_url  # type: ignore[attr-defined]
    other = make_study(store.make_session_factory(url), many)
    first = client.get(f"/api/v1/studies/{other}/importance").json()
    assert {d["axis"] for d in first["data"]} >= {"lr", "keep_prob"}
    assert sum(d["importance"] for d in first["data"]) == pytest.approx(1.0)
    assert first["data"][0]["axis"] == "lr"  # the value depends on lr alone
    computed = caches["importance"].computed
    assert computed == before + 1
    assert client.get(f"/api/v1/studies/{other}/importance").json() == first
    assert caches["importance"].computed == computed  # served from the cache


def test_compare_api(client: TestClient, sid: int) -> None:
    r = client.get("/api/v1/compare", params={"ids": f"{sid},{sid}"})
    assert r.status_code == 200
    series = r.json()["data"]
    assert len(series) == 1 and series[0]["study_id"] == sid  # duplicates collapse
    best = series[0]["best"]
    assert best == sorted(best, reverse=True)  # a running minimum never rises
    assert client.get("/api/v1/compare", params={"ids": "1,x"}).status_code == 422
    assert client.get("/api/v1/compare", params={"ids": "999999"}).status_code == 404
    assert client.get("/api/v1/compare", params={"ids": ",".join("123456789")}).status_code == 422
