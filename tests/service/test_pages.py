"""Server-rendered pages through the ASGI app on SQLite and PostgreSQL: the studies list,
the study page's table (sorting, filters, top N, paging), trial, compare and workers pages,
cancel, errors as pages, the live feed, and the assets the app serves itself."""

from __future__ import annotations

import gzip
import re

import pytest
from fastapi.testclient import TestClient

from search import store
from tests.study_data import Made, make_study, params

HTML = {"Accept": "text/html"}
TRIALS = [
    Made("COMPLETE", 0.4, params(0.01, 0.9, [64])),
    Made("PRUNED", 5.0, params(0.8), reason="diverged", epochs=1),
    Made("COMPLETE", 0.2, params(0.002, 0.6, [128, 32])),
    Made("FAIL", None, params(0.3), reason="error: <script>alert(1)</script>", epochs=0),
    Made("COMPLETE", 0.3, params(0.0005, 0.7, [16])),
]


@pytest.fixture(scope="module")
def client(module_client: TestClient) -> TestClient:
    return module_client


@pytest.fixture(scope="module")
def sid(module_migrated_url: str) -> int:
    return make_study(store.make_session_factory(module_migrated_url), TRIALS, running=1)


def numbers(html: str) -> list[int]:
    """Trial numbers of the leaderboard rows, in page order."""
    return [int(n) for n in re.findall(r'<tr data-number="(\d+)"', html)]


def page(client: TestClient, url: str, status: int = 200, **query: object) -> str:
    r = client.get(url, params=query, headers=HTML)
    assert r.status_code == status, r.text[:2000]
    assert r.headers["content-type"].startswith("text/html")
    return r.text


def test_studies_page_lists_studies_newest_first(client: TestClient, sid: int) -> None:
    html = page(client, "/")
    assert "<title>Studies · hpsearch</title>" in html
    assert f'<a href="/studies/{sid}">made-up</a>' in html
    assert "3 complete" in html and "1 pruned" in html and "1 failed" in html
    assert "1 running" in html and "of 50" in html
    ids = [int(i) for i in re.findall(r'<tr data-study="(\d+)"', html)]
    assert ids == sorted(ids, reverse=True)
    assert page(client, "/", page=1, per_page=1).count("<tr data-study=") == 1
    assert "Nothing on page 99" in page(client, "/", page=99)
    page(client, "/", 422, page=0)


def test_study_page_header_table_and_plots(client: TestClient, sid: int) -> None:
    html = page(client, f"/studies/{sid}")
    assert "<title>made-up (study " in html and 'href="/"' in html
    assert numbers(html) == [2, 4, 0, 1, 3, 5]  # ranked, then the rest by number
    assert 'Best: <a href="/studies/' in html and '<strong><span title="0.2">0.2</span>' in html
    assert "lr: {type: float" in html or "lr:" in html  # the spec, as YAML
    assert f'action="/studies/{sid}/cancel"' in html  # running: can be cancelled
    for plot in ("plot-history", "plot-curves", "plot-params", "plot-parallel", "plot-importance"):
        assert f'id="{plot}"' in html
    # Numbers: rounded for reading, full precision on hover; headers are sort links.
    assert '<th scope="col" class="num "' in html and "?sort=param%3Alr" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert re.search(r"/assets/plotly-[\d.]+\.min\.js", html)
    exports = ['trials.csv?state=all&amp;sort=rank"', 'trials.csv"', 'trials?limit=10000"']
    for export in exports:  # CSV and JSON, of this view and of all trials
        assert f'href="/api/v1/studies/{sid}/{export}' in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"sort": "value", "desc": "1"}, [1, 0, 4, 2, 3, 5]),
        ({"sort": "param:lr"}, [4, 2, 0, 5, 3, 1]),
        ({"state": "pruned"}, [1]),
        ({"state": "failed"}, [3]),
        ({"state": "running"}, [5]),
        ({"top": "2"}, [2, 4]),
        ({"top": ""}, [2, 4, 0, 1, 3, 5]),
        ({"per_page": "2", "page": "2"}, [0, 1]),
    ],
)
def test_sorting_filtering_and_paging(client: TestClient, sid: int, query, expected) -> None:
    assert numbers(page(client, f"/studies/{sid}", **query)) == expected


def test_sort_links_toggle_direction_and_keep_the_view(client: TestClient, sid: int) -> None:
    html = page(client, f"/studies/{sid}", sort="value", state="complete")
    assert 'aria-sort="ascending"' in html
    link = re.search(r'<a href="([^"]+)" title="sort by dev_loss"', html)
    assert link and "desc=1" in link.group(1) and "state=complete" in link.group(1)


@pytest.mark.parametrize(
    ("query", "status", "needle"),
    [
        ({"sort": "param:nope"}, 422, "no searched parameter"),
        ({"state": "bogus"}, 422, "state: must be one of"),
        ({"top": "x"}, 422, "top: must be a whole number"),
        ({"per_page": "0"}, 422, "per_page"),
    ],
)
def test_bad_queries_are_error_pages(client: TestClient, sid: int, query, status, needle) -> None:
    html = page(client, f"/studies/{sid}", status, **query)
    assert needle in html and 'href="/"' in html and "Traceback" not in html


def test_unknown_things_are_404_pages(client: TestClient, sid: int) -> None:
    assert "study 999999 not found" in page(client, "/studies/999999", 404)
    assert "trial 77 of study" in page(client, f"/studies/{sid}/trials/77", 404)
    assert "Not found" in page(client, "/no/such/page", 404)
    # The API keeps answering JSON.
    assert client.get("/api/v1/studies/999999").json() == {"detail": "study 999999 not found"}


def test_trial_page(client: TestClient, sid: int) -> None:
    html = page(client, f"/studies/{sid}/trials/1")
    assert "Trial 1" in html and "badge-pruned" in html and "diverged" in html
    assert "divergence limit (3.0 × initial loss = 6.9)" in html
    assert '<script type="application/json" id="trial-data">' in html
    best = page(client, f"/studies/{sid}/trials/2")
    assert "1 of 3 complete" in best and "128-32" in best
    assert 'id="resumed"' not in best  # it trained from the start


def test_compare_page(client: TestClient, sid: int, module_migrated_url: str) -> None:
    other = make_study(store.make_session_factory(module_migrated_url), TRIALS[:3])
    html = page(client, "/compare", ids=f"{sid},{other}")
    assert html.count('<th scope="col" class="num"><a href="/studies/') == 2
    assert 'id="plot-compare"' in html and f'data-ids="{sid},{other}"' in html
    assert "Pick studies to compare" in page(client, "/compare")
    assert "ids: &#39;x&#39; is not a study id" in page(client, "/compare", 422, ids="1,x")


def test_workers_page(client: TestClient) -> None:
    html = page(client, "/workers")
    assert "<h1>Workers</h1>" in html and ("No workers running" in html or "<table" in html)


def test_cancel_asks_then_cancels(client: TestClient, module_migrated_url: str) -> None:
    study = make_study(store.make_session_factory(module_migrated_url), TRIALS[:1], running=1)
    assert "Yes, cancel the study" in page(client, f"/studies/{study}/cancel")
    r = client.post(f"/studies/{study}/cancel", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/studies/{study}"
    assert client.get(f"/api/v1/studies/{study}").json()["status"] == "cancelled"
    html = page(client, f"/studies/{study}")
    assert "badge-cancelled" in html and f'action="/studies/{study}/cancel"' not in html
    again = client.post(f"/studies/{study}/cancel", headers=HTML)
    assert again.status_code == 409 and "already cancelled" in again.text


def test_live_feed_sends_rows_points_and_curves(client: TestClient, sid: int) -> None:
    live = client.get(f"/studies/{sid}/live", params={"cursor": 3, "state": "complete"}).json()
    assert live["active"] is True and live["cursor"] == 5
    rows = {r["number"]: r for r in live["rows"]}
    assert set(rows) == {3, 4, 5}  # ended after cursor 3, and the running one
    assert rows[4]["show"] and not rows[3]["show"] and not rows[5]["show"]
    assert rows[4]["rank"] == 2 and rows[4]["key"] == "[0, 2.0]"
    assert rows[4]["html"].startswith('<tr data-number="4" data-state="COMPLETE" data-rank="2"')
    assert live["points"]["number"] == [3, 4] and live["running"] == [5]
    assert {c["number"] for c in live["curves"]} == {4, 5}
    assert "study-status" in live["header_html"]


def test_assets_are_served_by_the_app(client: TestClient, sid: int) -> None:
    html = page(client, f"/studies/{sid}")
    plotly = re.search(r'src="(/assets/plotly-[^"]+)"', html)
    assert plotly
    r = client.get(plotly.group(1), headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
    assert r.headers["content-encoding"] == "gzip" and b"Plotly" in r.content[:5000]
    raw = client.get(plotly.group(1), headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers and len(raw.content) > len(gzip.compress(b"x"))
    etag = r.headers["etag"]
    assert client.get(plotly.group(1), headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/assets/plotly-0.0.1.min.js").status_code == 404
    for name in re.findall(r'(/static/[^"]+)"', html):
        asset = client.get(name)
        assert asset.status_code == 200, name
        assert "immutable" in asset.headers["cache-control"]
    assert client.get("/static/../settings.py").status_code == 404


def test_a_number_cell_is_rounded_with_full_precision_on_hover_and_escaped() -> None:
    from markupsafe import Markup

    from service.pages._render import number

    assert number(0.123456789) == '<span title="0.123456789">0.1235</span>'
    assert number(None) == '<span class="missing">–</span>'
    assert number([64, 32]) == number((64, 32))  # layer sizes, either form
    cell = number('<b a="1">&')
    assert isinstance(cell, Markup) and "<b" not in cell and "&amp;" in cell
    assert 'title="&lt;b a=&#34;1&#34;&gt;&amp;"' in cell  # quotes cannot end the title


def test_a_resumed_trial_says_where_it_went_on(
    client: TestClient, module_migrated_url: str
) -> None:
    from sqlalchemy import update

    factory = store.make_session_factory(module_migrated_url)
    other = make_study(factory, TRIALS[:1])
    with store.session_scope(factory) as s:
        s.execute(
            update(store.TrialRow).where(store.TrialRow.study_id == other).values(resumed_from=4)
        )
    html = page(client, f"/studies/{other}/trials/0")
    assert "after epoch 4, from the checkpoint" in html
    assert client.get(f"/api/v1/studies/{other}/trials/0").json()["resumed_from"] == 4
