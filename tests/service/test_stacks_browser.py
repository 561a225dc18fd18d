"""Trials trained together (issue 25) in a real browser (Debian's chromium through
Playwright) against a live ``hpsearch serve`` with no workers: the study page's stack
column and its links, the trial page's stack-mates, the workers page's stacked trials,
and a study that never batched showing no stack column.

The rows (trials with ``stack`` set, a busy worker training two trials together) are
written into the database the server reads; a long grace period keeps them from being
reaped. Screenshots go to ``/tmp/pages-shots/``.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from search import store
from tests.processes import env_for, free_port, spawn, stop, wait_healthy
from tests.service.test_pages_browser import watch
from tests.study_data import STACKED_TRIALS, make_stacked_study, make_study

SHOTS = Path("/tmp/pages-shots")


@dataclass(frozen=True)
class Site:
    base: str
    stacked: int
    plain: int


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("stacks-site")
    port = free_port()
    db_url = f"sqlite:///{tmp / 'pages.db'}"
    env = env_for(db_url, HPS_GRACE_PERIOD="3600")
    proc = spawn(["serve", "--port", str(port), "--workers", "0"], env=env, log=tmp / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        factory = store.make_session_factory(db_url)
        stacked, _ = make_stacked_study(factory)
        plain = make_study(factory, STACKED_TRIALS[:3])
        yield Site(base, stacked, plain)
    finally:
        stop(proc, signal.SIGKILL)


def words(text: str) -> str:
    return " ".join(text.split())


def test_stacked_trials_on_the_study_trial_and_workers_pages(browser: Any, site: Site) -> None:
    SHOTS.mkdir(exist_ok=True)
    sid = site.stacked
    with watch(browser, site.base) as w:
        page = w.page
        page.goto(f"{site.base}/studies/{sid}?sort=number")
        headers = page.locator("#trials thead th").all_inner_texts()
        assert [words(h) for h in headers][-3:] == ["stack", "state", "reason"]
        stack_cells = page.locator("#trials tbody td.stack")
        assert stack_cells.count() == 6
        by_row = {
            int(r.get_attribute("data-number")): words(r.locator("td.stack").inner_text())
            for r in page.locator("#trials tbody tr").all()
        }
        assert by_row == {0: "", 1: "#1", 2: "#1", 3: "#1", 4: "#4", 5: "#4"}
        page.screenshot(path=str(SHOTS / "stacks-study.png"), full_page=True)
        page.locator("#trials").screenshot(path=str(SHOTS / "stacks-table.png"))
        w.check_clean()
        page.locator('#trials tr[data-number="2"] td.stack a').click()
        page.wait_for_url(f"**/studies/{sid}/trials/2")
        stack = page.locator("#stack dd")
        assert words(stack.inner_text()) == (
            "Trained together with trials 1, 3 (a stack of 3, one model trained at once);"
            " it left the stack when pruned."
        )
        page.screenshot(path=str(SHOTS / "stacks-trial.png"), full_page=True)
        stack.get_by_role("link", name="3", exact=True).click()
        page.wait_for_url(f"**/studies/{sid}/trials/3")
        assert "Trained together with trials 1, 2 (a stack of 3" in words(
            page.locator("#stack dd").inner_text()
        )
        w.check_clean()

    with watch(browser, site.base) as w:
        page = w.page
        page.goto(f"{site.base}/workers")
        cell = page.locator("#workers .stacked")
        assert words(cell.inner_text()) == f"study {sid}, trials 4, 5 (stacked)"
        page.screenshot(path=str(SHOTS / "stacks-workers.png"), full_page=True)
        cell.get_by_role("link", name="5", exact=True).click()
        page.wait_for_url(f"**/studies/{sid}/trials/5")
        assert words(page.locator("#stack dd").inner_text()).startswith(
            "Training together with trial 4 (a stack of 2"  # trial 5 is running
        )
        w.check_clean()

    with watch(browser, site.base) as w:
        page = w.page
        page.goto(f"{site.base}/studies/{site.plain}")
        headers = [words(h) for h in page.locator("#trials thead th").all_inner_texts()]
        assert "stack" not in headers and headers[-2:] == ["state", "reason"]
        assert page.locator("#trials td.stack").count() == 0
        page.screenshot(path=str(SHOTS / "stacks-plain-study.png"), full_page=True)
        w.check_clean()
