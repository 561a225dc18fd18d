"""The pages in a real browser (Debian's chromium through Playwright) against a live
`hpsearch serve` with 2 workers running real small searches on SQLite.

Every test saves a screenshot in its temporary directory; every page must log no console
errors, break no rule of its content security policy (the ``securitypolicyviolation``
events each page records, on top of chromium's console report) and request nothing outside
the app.
"""

from __future__ import annotations

import contextlib
import csv
import io
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import env_for, free_port, spawn, stop, wait_healthy, wait_study

GRID = {  # 12 points; the 4 with lr=30 diverge at once, so pruned trials are certain
    "name": "browser-grid",
    "dataset": "digits",
    "search": {
        "sampler": "grid",
        "parallelism": 2,
        "space": {
            "lr": {"type": "float", "values": [0.001, 0.01, 30.0]},
            "keep_prob": {"type": "float", "values": [0.8, 1.0]},
            "hidden": {"type": "layers", "values": [[16], [32, 16]]},
        },
    },
    "training": {"epochs": 4, "optimizer": "sgd"},
}
RANDOM = {  # 12 tame trials: enough complete ones for parameter importance
    "name": "browser-random",
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": 12,
        "parallelism": 2,
        "seed": 3,
        "space": {
            "lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
            "keep_prob": {"type": "float", "low": 0.7, "high": 1.0},
            "hidden": {"type": "layers", "depth": [1, 2], "units": [16, 64]},
        },
    },
    "training": {"epochs": 4},
}
SLOW = {  # one trial at a time, each a second or more: the page must follow it live
    "name": "browser-live",
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": 8,
        "parallelism": 1,
        "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    },
    "training": {"epochs": 40, "batch_size": 16},
}


@dataclass
class Site:
    base: str
    grid: int
    random: int


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("site")
    port = free_port()
    proc = spawn(
        ["serve", "--port", str(port), "--workers", "2"],
        env=env_for(f"sqlite:///{tmp / 'pages.db'}"),
        log=tmp / "serve.log",
        cwd=tmp,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        ids = [httpx.post(f"{base}/api/v1/studies", json=s).json()["id"] for s in (GRID, RANDOM)]
        for sid in ids:
            assert wait_study(base, sid)["status"] == "completed"
        yield Site(base, *ids)
    finally:
        stop(proc, signal.SIGKILL)


# Runs before any page script: every CSP violation the page meets, as text.
RECORD_CSP_VIOLATIONS = """window.__csp_violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__csp_violations.push(
  e.violatedDirective + ' blocked ' + e.blockedURI + ' at ' + e.sourceFile + ':' + e.lineNumber));
"""


@dataclass
class Watched:
    """A page plus everything it logged and asked for."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def check_clean(self) -> None:
        assert self.page.evaluate("window.__csp_violations") == []
        assert self.errors == [], self.errors
        assert self.outside == [], f"requests outside the app: {self.outside}"


@contextlib.contextmanager
def watch(browser: Any, base: str, shot: Path | None = None) -> Iterator[Watched]:
    """A fresh page on ``base`` that records console errors, page errors, CSP violations
    and every request outside the app; a screenshot of it to ``shot`` at the end."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    page = context.new_page()
    w = Watched(page, base)
    page.on("console", lambda m: w.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: w.errors.append(f"page error: {e}"))
    page.on(
        "request",
        lambda r: None if r.url.startswith((base, "data:", "blob:")) else w.outside.append(r.url),
    )
    try:
        yield w
    finally:
        if shot is not None:
            page.screenshot(path=str(shot), full_page=True)
        context.close()


@pytest.fixture
def watched(browser: Any, site: Site, tmp_path: Path) -> Iterator[Watched]:
    with watch(browser, site.base, tmp_path / "page.png") as w:
        yield w


def api(site: Site, path: str, **params: Any) -> Any:
    r = httpx.get(f"{site.base}/api/v1{path}", params=params, timeout=10)
    r.raise_for_status()
    return r.json()


def open_study(w: Watched, study_id: int, query: str = "") -> None:
    w.page.goto(f"{w.base}/studies/{study_id}{query}")
    w.page.wait_for_selector("#study[data-drawn=true]", timeout=30_000)


def table_rows(w: Watched) -> list[dict[str, Any]]:
    return w.page.eval_on_selector_all(
        "#trials tbody tr",
        """rows => rows.map(r => ({
            number: Number(r.dataset.number), state: r.dataset.state,
            value: r.querySelector('td.objective span[title]')?.getAttribute('title') ?? null,
            cells: Array.from(r.cells).map(c => c.textContent.trim()),
        }))""",
    )


def count(w: Watched, selector: str) -> int:
    return int(w.page.eval_on_selector_all(selector, "els => els.length"))


def test_studies_page_lists_the_studies(watched: Watched, site: Site) -> None:
    watched.page.goto(watched.base + "/")
    assert watched.page.title() == "Studies · hpsearch"
    names = watched.page.eval_on_selector_all("#studies tbody td a", "as => as.map(a => a.text)")
    assert names[:2] == ["browser-random", "browser-grid"]  # newest first
    watched.page.click("text=browser-grid")
    watched.page.wait_for_url(f"**/studies/{site.grid}")
    watched.check_clean()


def test_study_page_table_equals_the_api_and_every_plot_renders(
    watched: Watched, site: Site
) -> None:
    open_study(watched, site.grid)
    board = api(site, f"/studies/{site.grid}/leaderboard", top=100)["data"]
    rows = table_rows(watched)
    assert len(rows) == 12
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert [(r["number"], float(r["value"])) for r in complete] == [
        (b["number"], b["value"]) for b in board
    ]
    assert rows[: len(board)] == complete  # complete trials first, in rank order
    trials = api(site, f"/studies/{site.grid}/trials", limit=100)["data"]
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert len(pruned) == 4 and all(t["reason"] == "diverged" for t in pruned)
    with_value = [t for t in trials if t["value"] is not None]

    history = count(watched, "#plot-history .scatterlayer .trace .points path.point")
    assert history == len(with_value) > 0
    per_axis = watched.page.eval_on_selector_all(
        "#plot-params > div", "ds => ds.map(d => d.querySelectorAll('.points path.point').length)"
    )
    assert per_axis == [len(with_value)] * 4  # lr, keep_prob, hidden depth and units
    assert count(watched, "#plot-parallel g.y-axis") == 5  # four axes and the objective
    curves = count(watched, "#plot-curves .scatterlayer .trace")
    assert curves >= 5 * 3  # objective, train and dev curves of at least the top five
    assert count(watched, "#plot-curves .scatterlayer .trace path.js-line") > 0
    note = watched.page.text_content("#importance-note")
    assert note and "Shown once 10 trials have completed (8 so far)" in note
    watched.check_clean()


def test_a_csp_violation_is_caught(watched: Watched, site: Site) -> None:
    """The checks every test ends with see a violation: a style attribute other than
    plotly's empty one is refused, reported and recorded."""
    open_study(watched, site.grid)
    watched.page.evaluate("document.body.setAttribute('style', 'background: red')")
    watched.page.wait_for_function("window.__csp_violations.length > 0")
    [violation] = watched.page.evaluate("window.__csp_violations")
    assert violation.startswith("style-src-attr blocked inline")
    assert any("style-src-attr" in e for e in watched.errors)  # chromium's console report
    with pytest.raises(AssertionError):
        watched.check_clean()
    watched.page.evaluate("window.__csp_violations = []")
    watched.errors.clear()
    watched.check_clean()


def test_importance_and_log_axes(watched: Watched, site: Site) -> None:
    open_study(watched, site.random)
    importance = api(site, f"/studies/{site.random}/importance")
    assert len(importance["data"]) == 4
    assert count(watched, "#plot-importance .barlayer .point") == 4
    log_axes = watched.page.evaluate(
        "() => Array.from(document.querySelectorAll('#plot-params > div'))"
        ".map(d => d._fullLayout.xaxis.type)"
    )
    assert log_axes == ["log", "linear", "linear", "log"]  # lr and units per layer
    watched.check_clean()


def test_sorting_by_a_column_reorders_rows(watched: Watched, site: Site) -> None:
    open_study(watched, site.random)
    watched.page.click("#trials thead a[title='sort by lr']")
    watched.page.wait_for_url("**sort=param%3Alr**")
    numbers = [r["number"] for r in table_rows(watched)]
    trials = api(site, f"/studies/{site.random}/trials", limit=100)["data"]
    lr = {t["number"]: t["params"]["lr"] for t in trials}
    assert numbers == sorted(lr, key=lambda n: (lr[n], n))
    watched.page.click("#trials thead a[title='sort by lr']")  # again: descending
    watched.page.wait_for_url("**desc=1**")
    assert [r["number"] for r in table_rows(watched)] == sorted(lr, key=lambda n: (-lr[n], n))
    watched.check_clean()


def test_filtering_shows_pruned_trials(watched: Watched, site: Site) -> None:
    open_study(watched, site.grid)
    watched.page.select_option("#view-form select[name=state]", "pruned")
    watched.page.wait_for_url("**state=pruned**")
    rows = table_rows(watched)
    pruned = api(site, f"/studies/{site.grid}/trials", state="pruned")["data"]
    assert [r["number"] for r in rows] == [t["number"] for t in pruned]
    assert len(rows) == 4 and {r["state"] for r in rows} == {"PRUNED"}
    assert all("diverged" in r["cells"] for r in rows)
    watched.check_clean()


def test_csv_download_matches_the_api(watched: Watched, site: Site, tmp_path: Path) -> None:
    open_study(watched, site.grid)
    with watched.page.expect_download() as info:
        watched.page.click("text=CSV (all trials)")
    path = tmp_path / "trials.csv"
    info.value.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    trials = api(site, f"/studies/{site.grid}/trials", limit=100)["data"]
    assert [int(r["number"]) for r in rows] == [t["number"] for t in trials]
    for row, t in zip(rows, trials, strict=True):
        assert row["state"] == t["state"]
        assert (float(row["dev_loss"]) if row["dev_loss"] else None) == t["value"]
        assert float(row["lr"]) == t["params"]["lr"]
    watched.check_clean()


def test_compare_page_shows_both_studies(watched: Watched, site: Site) -> None:
    watched.page.goto(f"{site.base}/compare?ids={site.grid},{site.random}")
    watched.page.wait_for_selector("#plot-compare[data-drawn=true]")
    assert count(watched, "#plot-compare .scatterlayer .trace") == 2
    legend = watched.page.text_content("#plot-compare .legend") or ""
    assert "browser-grid" in legend and "browser-random" in legend
    heads = watched.page.eval_on_selector_all("#compare-table thead a", "as => as.map(a => a.text)")
    assert heads == ["browser-grid", "browser-random"]
    watched.check_clean()


def test_trial_and_workers_pages(watched: Watched, site: Site) -> None:
    pruned = api(site, f"/studies/{site.grid}/trials", state="pruned")["data"][0]
    watched.page.goto(f"{site.base}/studies/{site.grid}/trials/{pruned['number']}")
    watched.page.wait_for_selector("#plot-trial[data-drawn=true]")
    assert "diverged" in (watched.page.text_content("dl.facts") or "")
    assert count(watched, "#plot-trial .scatterlayer .trace") >= 4  # + limit and the cut
    watched.page.goto(f"{site.base}/workers")
    assert count(watched, "#workers tbody tr") == 2
    watched.check_clean()


def test_a_running_study_updates_itself_then_can_be_cancelled(watched: Watched, site: Site) -> None:
    sid = httpx.post(f"{site.base}/api/v1/studies", json=SLOW).json()["id"]
    deadline = time.monotonic() + 120
    while api(site, f"/studies/{sid}")["counts"]["complete"] < 1:
        assert time.monotonic() < deadline, "the first trial never finished"
        time.sleep(0.2)
    open_study(watched, sid)
    page = watched.page
    page.evaluate("window.__loaded_once = true")  # gone if the page reloads
    before = len([r for r in table_rows(watched) if r["state"] == "COMPLETE"])
    page.wait_for_function(
        "n => document.querySelectorAll('#trials tbody tr[data-state=COMPLETE]').length > n",
        arg=before,
        timeout=120_000,
    )
    page.wait_for_selector("#trials tbody tr[data-state=RUNNING]", timeout=60_000)
    assert page.evaluate("window.__loaded_once") is True
    finished = [r for r in table_rows(watched) if r["state"] == "COMPLETE"]
    points = count(watched, "#plot-history .scatterlayer .trace .points path.point")
    assert points >= len(finished) > before
    # Every plot, the pager and the filter counts follow the table without a reload.
    page.wait_for_function(
        """() => {
            const complete = document.querySelectorAll('#trials tbody tr[data-state=COMPLETE]');
            const pc = document.getElementById('plot-parallel');
            const lr = document.querySelectorAll('#plot-params > div')[0];
            const pager = document.getElementById('pager').textContent;
            const all = document.querySelector('#view-form option[value=all]').textContent;
            const n = document.querySelectorAll('#trials tbody tr').length;
            return pc.querySelectorAll('g.y-axis').length === 2
                && pc._fullData[0].dimensions[0].values.length === complete.length
                && lr.querySelectorAll('.points path.point').length >= complete.length
                && pager.includes('of ' + n) && all === 'all (' + n + ')';
        }""",
        timeout=30_000,
    )

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Cancel study')")
    page.wait_for_selector(".study-status .badge-cancelled", timeout=30_000)
    assert api(site, f"/studies/{sid}")["status"] == "cancelled"
    assert count(watched, "form[data-confirm]") == 0
    watched.check_clean()


EARLY = {  # a plateau (lr far too small): early stopping ends each trial at epoch 3
    "name": "browser-early",
    "dataset": "iris",
    "search": {"sampler": "random", "n_trials": 2, "parallelism": 2, "seed": 1},
    "training": {"epochs": 30, "lr": 1e-7, "patience": 2, "min_delta": 1e-3},
}


def test_early_stopping_and_initial_loss_on_the_pages(
    watched: Watched, site: Site, tmp_path: Path
) -> None:
    sid = httpx.post(f"{site.base}/api/v1/studies", json=EARLY).json()["id"]
    assert wait_study(site.base, sid)["status"] == "completed"
    open_study(watched, sid)
    notes = watched.page.locator("#trials td.reason span.note").all_text_contents()
    assert notes == ["stopped early at epoch 3"] * 2
    assert count(watched, "#trials td.reason span.flag") == 0  # sane inits are not flagged
    watched.page.screenshot(path=str(tmp_path / "study.png"), full_page=True)
    watched.page.goto(f"{site.base}/studies/{sid}/trials/0")
    watched.page.wait_for_selector("#plot-trial[data-drawn=true]")
    early = watched.page.text_content("#early-stopping") or ""
    assert "stopped early at epoch 3; kept epoch 1" in early
    initial = watched.page.text_content("#initial-loss") or ""
    assert "untrained: about 1.099" in initial and "far off" not in initial
    watched.check_clean()
