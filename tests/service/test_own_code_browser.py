"""The pages of a study of the user's own code (``model: external``) in a real browser (Debian's
chromium through Playwright) against a live ``hpsearch serve`` with no workers: its trials
are claimed and reported over HTTP by this test, the way a user's code does.

Each test saves screenshots under ``/tmp/shots/`` (to look at) and ends with the checks of
``test_pages_browser``: no console errors, no content-security-policy violation, nothing
requested outside the app.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.own_code_data import (
    EPOCHS,
    FAIL_REASON,
    FAILED,
    LOG,
    PRUNED,
    RUNNING,
    SPEC,
    auc,
    client_name,
    curve,
    drive,
)
from tests.processes import env_for, free_port, spawn, stop, wait_healthy
from tests.service.test_pages_browser import Watched, count, watch

SHOTS = Path("/tmp/shots")


@dataclass
class Site:
    base: str
    study: int


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("own-code-site")
    port = free_port()
    # No workers (nothing here is trained by hpsearch); a grace period long enough that the
    # running trial stays running while the tests look at it.
    env = env_for(f"sqlite:///{tmp / 'pages.db'}", HPS_GRACE_PERIOD="600")
    proc = spawn(["serve", "--port", str(port), "--workers", "0"], env=env, log=tmp / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        with httpx.Client(timeout=10) as http:
            study = drive(http, base).study_id
        yield Site(base, study)
    finally:
        stop(proc, signal.SIGKILL)


@pytest.fixture
def watched(browser: Any, site: Site, tmp_path: Path) -> Iterator[Watched]:
    with watch(browser, site.base, tmp_path / "page.png") as w:
        yield w


def shot(w: Watched, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    w.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def api(site: Site, path: str, **params: Any) -> Any:
    r = httpx.get(f"{site.base}/api/v1{path}", params=params, timeout=10)
    r.raise_for_status()
    return r.json()


def traces(w: Watched, selector: str) -> list[dict[str, Any]]:
    """The traces plotly drew in ``selector``: name, axes and points."""
    return w.page.eval_on_selector(
        selector,
        """div => div._fullData.map(t => ({
            name: t.name, xaxis: t.xaxis, mode: t.mode,
            x: Array.from(t.x || []), y: Array.from(t.y || []),
        }))""",
    )


def headings(w: Watched) -> list[str]:
    return w.page.eval_on_selector_all(
        "#trials thead th a", "as => as.map(a => a.getAttribute('title').slice(8))"
    )


def open_study(w: Watched, study_id: int) -> None:
    w.page.goto(f"{w.base}/studies/{study_id}")
    w.page.wait_for_selector("#study[data-drawn=true]", timeout=30_000)


def test_the_table_shows_the_reported_metrics_as_columns(watched: Watched, site: Site) -> None:
    open_study(watched, site.study)
    assert headings(watched) == [
        "rank", "trial", "val_auc", "lr", "width", "act", "hidden",
        "loss", "lr (metric)", "val_loss", "epochs", "time", "state", "reason",
    ]  # fmt: skip
    subtitle = watched.page.text_content("p.subtitle") or ""
    assert subtitle.startswith("your code · random sampler · maximize val_auc")
    rows = watched.page.eval_on_selector_all(
        "#trials tbody tr",
        "rs => rs.map(r => [Number(r.dataset.number),"
        " Array.from(r.cells).map(c => c.textContent.trim())])",
    )
    trials = api(site, f"/studies/{site.study}/trials", limit=100)["data"]
    assert [n for n, _ in rows] == [t["number"] for t in trials]
    best = dict(zip(headings(watched), rows[0][1], strict=True))
    assert (best["trial"], best["val_auc"], best["loss"], best["lr (metric)"]) == (
        "10",
        f"{auc(10):.4g}",
        "0.3",
        "0.01",
    )
    watched.page.click("#trials thead a[title='sort by val_loss']")
    watched.page.wait_for_url("**sort=metric%3Aval_loss**")
    numbers = watched.page.eval_on_selector_all(
        "#trials tbody tr", "rs => rs.map(r => Number(r.dataset.number))"
    )
    assert numbers == [10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, PRUNED, FAILED, RUNNING]
    shot(watched, "own-code-study-sorted")
    watched.check_clean()


def test_the_plots_draw_what_was_reported(watched: Watched, site: Site) -> None:
    open_study(watched, site.study)
    drawn = {t["name"]: t for t in traces(watched, "#plot-curves")}
    best = drawn["trial 10"]  # the objective, against the epochs reported
    assert (best["x"], best["y"], best["xaxis"]) == (EPOCHS, curve(10)["val_auc"], "x")
    loss = drawn["trial 10 loss"]  # the loss metric the divergence rule watches, right
    assert (loss["x"], loss["y"], loss["xaxis"]) == (EPOCHS, curve(10)["loss"], "x2")
    assert drawn["trial 11 (pruned) loss"]["y"] == [1.0, 3.5]
    assert drawn["trial 11 (pruned) divergence limit"]["y"] == [3.0, 3.0]
    assert drawn["trial 11 (pruned) cut"]["x"] == [1]
    assert drawn["trial 13 (running)"]["x"] == [0]
    assert set(drawn) >= {f"trial {n}" for n in (6, 7, 8, 9)}
    titles = watched.page.evaluate(
        "() => { const l = document.getElementById('plot-curves')._fullLayout;"
        " return [l.yaxis.title.text, l.yaxis2.title.text, l.yaxis.type]; }"
    )
    assert titles == ["val_auc", "loss", "linear"]  # maximised: not a loss, no log axis
    assert count(watched, "#plot-history .scatterlayer .trace .points path.point") == 12
    assert count(watched, "#plot-params > div") == 5  # lr, width, act, hidden depth, units
    assert count(watched, "#plot-parallel g.y-axis") == 6  # five axes and the objective
    assert count(watched, "#plot-importance .barlayer .point") == 5  # 11 complete
    shot(watched, "own-code-study")
    watched.check_clean()


def test_the_trial_pages_show_the_curves_and_the_log(watched: Watched, site: Site) -> None:
    page = watched.page
    page.goto(f"{site.base}/studies/{site.study}/trials/10")
    page.wait_for_selector("#plot-trial[data-drawn=true]")
    drawn = {t["name"]: t for t in traces(watched, "#plot-trial")}
    assert drawn["trial 10"]["y"] == curve(10)["val_auc"] and drawn["trial 10"]["x"] == EPOCHS
    assert drawn["trial 10 loss"]["y"] == curve(10)["loss"]
    [other] = traces(watched, "#plot-trial-others > div")
    assert (other["name"], other["x"], other["y"]) == ("lr", EPOCHS, curve(10)["lr"])
    facts = page.text_content("dl.facts") or ""
    assert client_name(10) in facts and "3 reports, the last at epoch 10" in facts
    shot(watched, "own-code-trial-complete")
    page.goto(f"{site.base}/studies/{site.study}/trials/{FAILED}")
    page.wait_for_selector("#plot-trial[data-drawn=true]")
    assert FAIL_REASON in (page.text_content("dl.facts") or "")
    log = page.locator("#trial-log pre.log")
    assert log.text_content() == LOG  # shown as text, never run
    assert count(watched, "#trial-log script") == 0
    sizes = log.evaluate("p => [p.scrollHeight, p.clientHeight]")
    assert sizes[0] > 2 * sizes[1]  # a long log scrolls in its box
    shot(watched, "own-code-trial-failed")
    page.goto(f"{site.base}/studies/{site.study}/trials/{PRUNED}")
    page.wait_for_selector("#plot-trial[data-drawn=true]")
    limit = {t["name"]: t for t in traces(watched, "#plot-trial")}
    assert limit["trial 11 (pruned) divergence limit"]["y"] == [3.0, 3.0]
    shot(watched, "own-code-trial-pruned")
    watched.check_clean()


def post(site: Site, url: str, body: dict[str, Any]) -> Any:
    r = httpx.post(f"{site.base}/api/v1{url}", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_an_unchanged_study_is_polled_with_its_version(watched: Watched, site: Site) -> None:
    """The live page sends back the version it holds (If-None-Match): while nothing changes
    each poll is a 304 and the page keeps what it shows; the first change comes through."""
    sid = httpx.post(f"{site.base}/api/v1/studies", json=SPEC | {"name": "own-code-idle"})
    sid = sid.json()["id"]  # no trial claimed yet: nothing changes until one is
    open_study(watched, sid)
    page = watched.page
    page.evaluate("window.__loaded_once = true")  # gone if the page reloads
    for _ in range(2):  # the first poll may be the first answer at this version
        with page.expect_response(lambda r: "/live?" in r.url, timeout=15_000) as polled:
            pass
    answer = polled.value
    assert answer.status == 304, answer.status
    assert answer.request.headers["if-none-match"].startswith('W/"')
    assert answer.headers["etag"] == answer.request.headers["if-none-match"]
    post(site, f"/studies/{sid}/trials/claim", {"client": "idle:1"})
    page.wait_for_selector("#trials tbody tr[data-state=RUNNING]", timeout=15_000)
    assert page.evaluate("window.__loaded_once") is True
    watched.check_clean()


def test_a_running_study_of_your_code_updates_itself(watched: Watched, site: Site) -> None:
    r = httpx.post(f"{site.base}/api/v1/studies", json=SPEC | {"name": "own-code-live"})
    sid = r.json()["id"]
    first = post(site, f"/studies/{sid}/trials/claim", {"client": "live:1"})
    url = f"/studies/{sid}/trials/0"
    post(site, f"{url}/report", {"lease": first["lease"], "epoch": 0, "metrics": {"loss": 1.0}})
    open_study(watched, sid)
    page = watched.page
    page.evaluate("window.__loaded_once = true")  # gone if the page reloads
    assert "loss" not in headings(watched)  # no trial has ended: no metric columns yet
    page.wait_for_selector("#trials tbody tr[data-state=RUNNING]")
    for epoch, (loss, auc_) in enumerate([(0.8, 0.6), (0.6, 0.7)], start=1):
        body = {"loss": loss, "val_auc": auc_, "grad_norm": 1.0 / epoch}
        post(site, f"{url}/report", {"lease": first["lease"], "epoch": epoch, "metrics": body})
    page.wait_for_function(
        "() => { const t = document.getElementById('plot-curves')._fullData.find("
        "d => d.name === 'trial 0 (running)'); return t && t.x.length === 3; }"
    )
    post(site, f"{url}/complete", {"lease": first["lease"], "metrics": {"val_auc": 0.72}})
    page.wait_for_selector("#trials tbody tr[data-number='0'][data-state=COMPLETE]")
    page.wait_for_function("() => document.querySelectorAll('#trials thead th').length === 13")
    assert headings(watched)[7:10] == ["loss", "grad_norm", "epochs"]
    cells = page.eval_on_selector_all(
        "#trials tbody tr[data-number='0'] td", "tds => tds.map(td => td.textContent.trim())"
    )
    assert cells[2] == "0.72" and cells[7:9] == ["0.6", "0.5"]
    assert page.evaluate("window.__loaded_once") is True
    shot(watched, "own-code-live")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Cancel study')")
    page.wait_for_selector(".study-status .badge-cancelled", timeout=30_000)
    assert api(site, f"/studies/{sid}")["status"] == "cancelled"
    watched.check_clean()


def test_the_list_and_compare_pages_say_your_code(watched: Watched, site: Site) -> None:
    page = watched.page
    page.goto(f"{site.base}/")
    row = page.locator(f'#studies tr[data-study="{site.study}"] td').all_text_contents()
    assert row[8] == "your code"  # the dataset column
    shot(watched, "own-code-list")
    page.goto(f"{site.base}/compare?ids={site.study}")
    page.wait_for_selector("#plot-compare[data-drawn=true]")
    [best] = traces(watched, "#plot-compare")
    assert best["x"] == list(range(11)) and best["y"][-1] == auc(10)
    table = page.locator("#compare-table tbody").text_content() or ""
    assert "your code" in table
    shot(watched, "own-code-compare")
    watched.check_clean()
