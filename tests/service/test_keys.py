"""API keys end to end: the ``hpsearch keys`` commands, only hashes in the database, a
revoked key refused on its next request, browser sign-in with a key (cookie flags, CSRF,
sign-out) and the CLI sending ``HPS_API_KEY``."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from search import store
from service.app import create_app
from service.cli import app as cli
from service.keys import revoke_key
from service.settings import Settings
from tests.service.auth_helpers import bearer, make_keys, owned_study

runner = CliRunner()


def keys_cli(url: str, *args: str) -> Any:
    return runner.invoke(cli, ["keys", *args, "--db", url])


def test_keys_commands(sqlite_url: str) -> None:
    made = keys_cli(sqlite_url, "create", "alice-laptop", "--user", "alice")
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert re.fullmatch(r"hps_[A-Za-z0-9_-]{43}", token)
    assert "shown only now" in made.stderr
    assert keys_cli(sqlite_url, "create", "root", "--admin").exit_code == 0
    listed = keys_cli(sqlite_url, "list")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:4] == ["name", "user", "admin", "created"]
    assert lines[1].split()[:3] == ["alice-laptop", "alice", "no"] and "never" in lines[1]
    assert lines[2].split()[:3] == ["root", "root", "yes"]
    assert token not in listed.output
    again = keys_cli(sqlite_url, "create", "root")
    assert again.exit_code == 1 and "already exists" in again.stderr
    bad = keys_cli(sqlite_url, "create", "no spaces!")
    assert bad.exit_code == 1 and "'no spaces!' is not allowed" in bad.stderr
    assert keys_cli(sqlite_url, "revoke", "alice-laptop").exit_code == 0
    assert "alice-laptop" not in keys_cli(sqlite_url, "list").stdout
    gone = keys_cli(sqlite_url, "revoke", "alice-laptop")
    assert gone.exit_code == 1 and "no key named 'alice-laptop'" in gone.stderr


def dump(url: str) -> str:
    """Every row of every table, as text (what a stolen backup holds)."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return "\n".join(conn.iterdump())
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            return "\n".join(
                repr(row) for t in tables for row in conn.execute(text(f'SELECT * FROM "{t}"'))
            )
    finally:
        engine.dispose()


@pytest.fixture
def app_on(migrated_url: str) -> Iterator[tuple[TestClient, str]]:
    app = create_app(Settings(database_url=migrated_url, auth="on"), recover=False)
    with TestClient(app, follow_redirects=False) as client:
        yield client, migrated_url


def test_only_hashes_are_stored_and_revocation_is_immediate(
    app_on: tuple[TestClient, str],
) -> None:
    client, url = app_on
    keys = make_keys(url)
    sid = owned_study(client.app.state.session_factory, "alice")  # type: ignore[attr-defined]
    assert client.get(f"/api/v1/studies/{sid}", headers=bearer(keys.alice)).status_code == 200
    signed = client.post("/signin", data={"key": keys.alice, "next": "/"})
    cookie = signed.cookies["hps_session"]
    text_of_db = dump(url)
    for token in (keys.alice, keys.bob, keys.root, cookie):
        assert token not in text_of_db
    assert hashlib.sha256(keys.alice.encode()).hexdigest() in text_of_db

    with store.session_scope(client.app.state.session_factory) as s:  # type: ignore[attr-defined]
        used = store.get_key_by_name(session=s, name="alice")
        assert used is not None and used.last_used_at is not None
    page = client.get(f"/studies/{sid}", headers={"Accept": "text/html"})
    assert page.status_code == 200

    revoke_key(url, "alice")
    refused = client.get(f"/api/v1/studies/{sid}", headers=bearer(keys.alice))
    assert refused.status_code == 401
    assert refused.json() == {"detail": "invalid or revoked API key"}
    after = client.get(f"/studies/{sid}", headers={"Accept": "text/html"})  # same cookie
    assert after.status_code == 303 and after.headers["location"].startswith("/signin")
    assert client.get(f"/api/v1/studies/{sid}", headers=bearer(keys.root)).status_code == 200


def test_browser_sign_in_cookie_csrf_and_sign_out(app_on: tuple[TestClient, str]) -> None:
    client, url = app_on
    keys = make_keys(url)
    sid = owned_study(client.app.state.session_factory, "alice")  # type: ignore[attr-defined]
    html = {"Accept": "text/html"}
    wrong = client.post("/signin", data={"key": "hps_wrong", "next": "/"})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    signed = client.post("/signin", data={"key": keys.alice, "next": f"/studies/{sid}"})
    assert signed.status_code == 303 and signed.headers["location"] == f"/studies/{sid}"
    flags = signed.headers["set-cookie"].lower()
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    assert "secure" not in flags  # plain http here; see the TLS case below
    page = client.get(f"/studies/{sid}", headers=html)
    assert page.status_code == 200 and "signed in as alice" in page.text
    csrf = re.search(r'data-csrf="([0-9a-f]{64})"', page.text)
    assert csrf is not None

    no_token = client.post(f"/studies/{sid}/cancel", headers=html)
    assert no_token.status_code == 403 and "CSRF" in no_token.text
    api_no_token = client.post(f"/api/v1/studies/{sid}/cancel")
    assert api_no_token.status_code == 403
    claim = f"/api/v1/studies/{sid}/trials/claim"  # the trial API's own access check
    assert client.post(claim).status_code == 403
    past_check = client.post(claim, headers={"X-CSRF-Token": csrf[1]})
    assert past_check.status_code == 409, past_check.text  # a built-in study's: the workers'
    cross = client.post(
        f"/studies/{sid}/cancel",
        data={"csrf_token": csrf[1]},
        headers=html | {"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    done = client.post(f"/studies/{sid}/cancel", data={"csrf_token": csrf[1]}, headers=html)
    assert done.status_code == 303
    assert client.get(f"/api/v1/studies/{sid}").json()["status"] == "cancelled"

    out = client.post("/signout", data={"csrf_token": csrf[1]})
    assert out.status_code == 303 and 'hps_session=""' in out.headers["set-cookie"]
    assert client.get(f"/studies/{sid}", headers=html).status_code == 303
    with store.session_scope(client.app.state.session_factory) as s:  # type: ignore[attr-defined]
        assert s.query(store.WebSessionRow).count() == 0  # the session is gone, not just the cookie


NAV_LINKS = re.compile(r'<nav aria-label="main">(.*?)</nav>', re.S)


def nav_links(html: str) -> list[str]:
    match = NAV_LINKS.search(html)
    assert match is not None
    return re.findall(r'<a[^>]* href="([^"]+)"', match[1])


def test_navigation_shows_a_visitor_only_what_they_can_use(
    app_on: tuple[TestClient, str],
) -> None:
    client, url = app_on
    keys = make_keys(url)
    public = owned_study(client.app.state.session_factory, "alice", public=True)  # type: ignore[attr-defined]
    html = {"Accept": "text/html"}
    signin = client.get("/signin", headers=html)
    visitor = ["/", "/", "/signin"]  # the brand and the public studies, and signing in
    assert signin.status_code == 200 and nav_links(signin.text) == visitor
    assert "Public studies" in signin.text and "/compare" not in signin.text
    wrong = client.post("/signin", data={"key": "hps_wrong", "next": "/"})
    assert wrong.status_code == 401 and nav_links(wrong.text) == visitor
    shared = client.get(f"/studies/{public}", headers=html)  # a public study, no key
    assert shared.status_code == 200 and nav_links(shared.text) == visitor
    listed = client.get("/", headers=html)
    assert listed.status_code == 200 and nav_links(listed.text) == visitor

    client.post("/signin", data={"key": keys.bob, "next": "/"})
    for path in ("/signin", "/", f"/studies/{public}"):
        page = client.get(path, headers=html)
        assert page.status_code == 200
        assert nav_links(page.text) == ["/", "/", "/compare", "/workers", "/docs"]
        assert "signed in as bob" in page.text


def test_navigation_with_auth_off(module_client: TestClient) -> None:
    signin = module_client.get("/signin", headers={"Accept": "text/html"})
    assert nav_links(signin.text) == ["/", "/", "/compare", "/workers", "/docs"]


def test_cookie_is_secure_over_tls(app_on: tuple[TestClient, str]) -> None:
    client, url = app_on
    keys = make_keys(url)
    client.base_url = client.base_url.copy_with(scheme="https")
    signed = client.post("/signin", data={"key": keys.bob, "next": "//evil.example/"})
    assert signed.headers["location"] == "/"  # never a redirect to another site
    assert "secure" in signed.headers["set-cookie"].lower()


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).seen.append(self.headers.get("Authorization"))
        body = json.dumps({"data": [], "count": 0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_cli_sends_hps_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        monkeypatch.setenv("HPS_API_KEY", "hps_example")
        assert runner.invoke(cli, ["list", "--url", url]).exit_code == 0
        monkeypatch.delenv("HPS_API_KEY")
        assert runner.invoke(cli, ["list", "--url", url]).exit_code == 0
    finally:
        server.shutdown()
    assert _Recorder.seen == ["Bearer hps_example", None]


def test_recording_a_key_use_holds_no_other_connection(
    app_on: tuple[TestClient, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request recording its key's use must not already hold a pooled connection: on
    PostgreSQL reads and writes share one pool (10), and 40 request threads each holding
    one while waiting for a second starve each other until the pool times out (seen under
    bench/load.py)."""
    client, url = app_on
    keys = make_keys(url)
    held: list[int] = []
    touch = store.touch_key

    def watched_touch(**kwargs: Any) -> None:
        engines = {store.get_engine(url), store.get_engine(url, read_only=True)}
        held.append(sum(e.pool.checkedout() for e in engines))  # type: ignore[attr-defined]
        touch(**kwargs)

    monkeypatch.setattr(store, "touch_key", watched_touch)
    assert client.get("/api/v1/studies", headers=bearer(keys.alice)).status_code == 200
    assert held == [0]
