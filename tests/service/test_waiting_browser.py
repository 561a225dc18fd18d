"""A stuck study in a real browser (Debian's chromium through Playwright) against a live
``hpsearch serve`` with no workers and a 2-s grace period: the study page shows the
"waiting for a worker" banner, takes it down live when a worker turns up and puts it back
when that worker goes silent; the studies list marks the study with a badge.

The "worker" is a row this test registers and keeps heartbeating in the same database: all
the reads look at. Screenshots go to ``/tmp/shots/``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from search import store
from tests.processes import env_for, free_port, spawn, stop, wait_healthy
from tests.service.test_pages_browser import Watched, watch

SHOTS = Path("/tmp/shots")
WAIT_MS = 30_000  # an upper bound for the page to follow (a poll every 1.5 s), not a timing
SPEC = {
    "name": "nobody-serves-me",
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": 4,
        "parallelism": 2,
        "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
    },
    "training": {"epochs": 2},
}


@dataclass
class Site:
    base: str
    db_url: str
    study: int


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("waiting-site")
    port = free_port()
    db_url = f"sqlite:///{tmp / 'pages.db'}"
    env = env_for(db_url, HPS_GRACE_PERIOD="2", HPS_HEARTBEAT_INTERVAL="0.5")
    proc = spawn(["serve", "--port", str(port), "--workers", "0"], env=env, log=tmp / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        study = httpx.post(f"{base}/api/v1/studies", json=SPEC).json()["id"]
        yield Site(base, db_url, study)
    finally:
        stop(proc, signal.SIGKILL)


@pytest.fixture
def watched(browser: Any, site: Site) -> Iterator[Watched]:
    with watch(browser, site.base) as w:
        yield w


class FakeWorker:
    """A worker row kept live (heartbeat every 0.2 s) until ``stop``: what a real idle
    worker looks like to the reads."""

    def __init__(self, db_url: str) -> None:
        self.factory = store.make_session_factory(db_url)
        with store.session_scope(self.factory) as s:
            self.id = store.register_worker(
                session=s, name="fake", host="test", pid=1, device="cpu"
            )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(0.2):
            with store.session_scope(self.factory) as s:
                store.heartbeat(session=s, worker_id=self.id)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_a_stuck_study_shows_a_banner_that_follows_its_workers(
    watched: Watched, site: Site
) -> None:
    SHOTS.mkdir(exist_ok=True)
    page = watched.page
    page.goto(f"{site.base}/studies/{site.study}")
    banner = page.locator("#waiting")
    # Shown once the study has waited a grace period (at load, or by the live update).
    banner.wait_for(state="visible", timeout=WAIT_MS)
    assert "Waiting for a worker:" in banner.inner_text()
    assert "no live worker that can serve this study" in banner.inner_text()
    assert page.locator(".study-status .badge-waiting").is_visible()
    page.screenshot(path=str(SHOTS / "waiting-study.png"), full_page=False)

    worker = FakeWorker(site.db_url)
    try:
        banner.wait_for(state="detached", timeout=WAIT_MS)  # live: a worker could serve it
        assert page.locator(".badge-waiting").count() == 0
        page.screenshot(path=str(SHOTS / "waiting-served.png"), full_page=False)
    finally:
        worker.stop()
    banner.wait_for(state="visible", timeout=WAIT_MS)  # silent again past the grace period

    page.goto(f"{site.base}/")
    row = page.locator(f'tr[data-study="{site.study}"]')
    assert row.locator(".badge-waiting").inner_text() == "waiting for a worker"
    assert "0/4 done" in row.inner_text()
    page.screenshot(path=str(SHOTS / "waiting-list.png"), full_page=False)
    watched.check_clean()
