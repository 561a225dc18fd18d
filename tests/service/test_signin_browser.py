"""Signing in with a key in a real browser (headless Debian chromium) against a real
``serve`` with HPS_AUTH=on: the redirect to /signin and back, a wrong key, the session
cookie's flags, cancelling through the confirm dialog (the form carries its CSRF token),
signing out. The sign-in page's screenshot is saved as ``signin.png`` in the test's
temporary directory; every page must log no console errors (CSP violations included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from search import store
from service.keys import create_key
from tests.processes import env_for, free_port, spawn, stop, wait_healthy
from tests.service.auth_helpers import owned_study
from tests.service.test_pages_browser import RECORD_CSP_VIOLATIONS


def test_sign_in_cancel_and_sign_out(browser: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hps.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = spawn(
        ["serve", "--port", str(port), "--workers", "0"],
        env=env_for(url, HPS_AUTH="on"),
        log=tmp_path / "serve.log",
    )
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    try:
        wait_healthy(base, proc)
        key = create_key(url, "alice")
        sid = owned_study(store.make_session_factory(url), "alice")
        mine = httpx.get(f"{base}/api/v1/studies/{sid}", headers={"Authorization": f"Bearer {key}"})
        assert mine.status_code == 200

        page.goto(f"{base}/studies/{sid}")
        assert page.url == f"{base}/signin?next=%2Fstudies%2F{sid}"
        assert page.title() == "Sign in · hpsearch"
        nav = page.eval_on_selector_all("header nav a", "as => as.map(a => a.pathname)")
        assert nav == ["/", "/", "/signin"]  # the public studies and signing in, nothing else
        page.screenshot(path=str(tmp_path / "signin.png"))
        page.fill("input[name=key]", "hps_not-a-key")
        page.click("button:has-text('Sign in')")
        assert "That key is not valid" in page.text_content("main")
        errors.remove(next(e for e in errors if "401" in e))  # the refused sign-in's status

        page.fill("input[name=key]", key)
        page.click("button:has-text('Sign in')")
        page.wait_for_url(f"{base}/studies/{sid}")
        assert "signed in as alice" in page.text_content("header")
        [cookie] = context.cookies()
        assert (
            cookie["name"] == "hps_session" and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        )
        assert not cookie["secure"]  # plain http on loopback
        assert key not in cookie["value"]

        page.once("dialog", lambda dialog: dialog.accept())
        page.click("button:has-text('Cancel study')")
        page.wait_for_selector(".study-status .badge-cancelled", timeout=30_000)

        page.click("button:has-text('Sign out')")
        page.wait_for_url(f"{base}/signin")
        assert context.cookies() == []
        page.goto(f"{base}/studies/{sid}")
        assert page.url.startswith(f"{base}/signin?next=")
        assert page.evaluate("window.__csp_violations") == []
        assert errors == [], errors
    finally:
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        context.close()
        stop(proc)
