"""Every route of the app while its PostgreSQL server is down (``pg_ctl -m immediate``, as a
crash or a failover does): 503 with ``Retry-After``, never 500; JSON ``{"detail": ...}``
for the API, an HTML page for a browser asking for a page. Started again, the same app
answers them as before by itself. The routes come from the app's route table, so a route
added later is checked without a line here (unless it needs a request body: then this
file fails until ``REQUESTS`` gives it one)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select

from search import store
from search.store import OUTAGE
from service.app import create_app
from service.errors import RETRY_AFTER_S
from service.pages.assets import plotly_asset
from service.runner import upgrade_db
from service.settings import Settings
from tests.conftest import _forget
from tests.pg_server import PgServer, pg_server
from tests.service.auth_helpers import bearer, keep_a_model, make_keys, owned_dataset, owned_study
from tests.study_data import SPEC

# Routes that answer without the database, with their status and why: nothing else may
# answer anything but 503 while it is away.
NO_DATABASE: dict[str, tuple[int, str]] = {
    "/openapi.json": (200, "the API's schema, built from the code"),
    "/docs": (200, "FastAPI's viewer of the schema: a page of its own"),
    "/docs/oauth2-redirect": (200, "part of that viewer"),
    "/redoc": (200, "the other viewer of the schema"),
    "/static/{name}": (200, "a file shipped with the app"),
    "/assets/plotly-{version}.min.js": (200, "plotly.js, shipped with the app"),
}
# With auth off there is no key to read: signing in and out only redirects.
NO_DATABASE_AUTH_OFF: dict[tuple[str, str], tuple[int, str]] = {
    ("GET", "/signin"): (200, "the sign-in form, nobody to look up"),
    ("POST", "/signin"): (303, "auth off: straight on to the page asked for"),
    ("POST", "/signout"): (303, "auth off: no session to end"),
}
HEALTH = ("/health", "/api/v1/health")  # 503 with a body of their own: Health(status=...)
# Path parameters: a valid-looking value for each; any other name gets "1".
PATH_VALUES = {"number": "0", "name": "style.css", "version": plotly_asset().version}


def _requests() -> dict[tuple[str, str], dict[str, Any]]:
    """What a route needs beyond its path to get past validation to the database."""
    table = "x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(40))
    lease = {"lease": "not-held"}
    return {
        ("POST", "/api/v1/studies"): {"json": SPEC | {"search": SPEC["search"] | {"n_trials": 1}}},
        ("PATCH", "/api/v1/studies/{study_id}"): {"json": {"public": True}},
        ("POST", "/api/v1/datasets"): {
            "files": {"file": ("t.csv", table.encode(), "text/csv")},
            "data": {"target": "y", "name": f"t{time.time_ns()}"},
        },
        ("GET", "/api/v1/compare"): {"params": {"ids": "{study_id}"}},
        ("GET", "/compare"): {"params": {"ids": "{study_id}"}},
        ("POST", "/signin"): {"data": {"key": "hps_not-a-key", "next": "/"}},
        ("POST", "/api/v1/studies/{study_id}/trials/{number}/report"): {
            "json": lease | {"epoch": 0, "metrics": {"dev_loss": 1.0}}
        },
        ("POST", "/api/v1/studies/{study_id}/trials/{number}/heartbeat"): {"json": lease},
        ("POST", "/api/v1/studies/{study_id}/trials/{number}/complete"): {
            "json": lease | {"metrics": {"dev_loss": 1.0}}
        },
        ("POST", "/api/v1/studies/{study_id}/trials/{number}/fail"): {
            "json": lease | {"reason": "x"}
        },
    }


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # as the route table spells it: /studies/{study_id}
    kwargs: dict[str, Any]

    @property
    def page(self) -> bool:
        """A page a browser asks for (not the API, the probes, the schema or live JSON)."""
        return not self.path.startswith(("/api/", "/health", "/openapi")) and not (
            self.path.endswith("/live")
        )


def route_table(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route of ``app``, included routers flattened: reads first."""
    found = {
        (method, route.path_format)
        for route in iter_route_contexts(app.routes)
        for method in route.methods or ()
    }
    return sorted(found, key=lambda r: (r[0] not in ("GET", "HEAD"), r))


def calls(app: Any, study_id: int, dataset_id: int, token: str | None) -> list[Call]:
    """One request per route and method of ``app``, about ``study_id`` and ``dataset_id``."""
    values = PATH_VALUES | {"study_id": str(study_id), "dataset_id": str(dataset_id)}
    extra = _requests()
    made = []
    for method, path in route_table(app):
        kwargs = dict(extra.get((method, path), {}))
        url = path
        for name, value in values.items():
            url = url.replace("{" + name + "}", value)
        while "{" in url:  # a parameter not named above
            url = url[: url.index("{")] + "1" + url[url.index("}") + 1 :]
        if "params" in kwargs:
            kwargs["params"] = {k: v.format(**values) for k, v in kwargs["params"].items()}
        page = Call(method, path, {}).page
        kwargs["headers"] = bearer(token) | ({"Accept": "text/html"} if page else {})
        made.append(Call(method, path, kwargs | {"url": url}))
    return made


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    """A PostgreSQL server of this module's own, migrated; up again after each test."""
    with pg_server() as s:
        upgrade_db(s.url)
        try:
            yield s
        finally:
            OUTAGE.succeeded()  # a test that failed mid-outage leaves none under way
            _forget(s.url)


def no_database_status(call: Call, auth: str) -> int | None:
    """The status of a route that answers without the database; None: it needs it."""
    if call.path in NO_DATABASE:
        return NO_DATABASE[call.path][0]
    if auth == "off" and (call.method, call.path) in NO_DATABASE_AUTH_OFF:
        return NO_DATABASE_AUTH_OFF[(call.method, call.path)][0]
    return None


def outage_problem(call: Call, response: httpx.Response, auth: str) -> str | None:
    """What is wrong with ``response`` to ``call`` while the database is down; None: right."""
    status, headers = response.status_code, response.headers
    if (want := no_database_status(call, auth)) is not None:
        return None if status == want else f"{status}, expected {want} (needs no database)"
    if status != 503 or headers.get("retry-after") != str(RETRY_AFTER_S):
        return f"{status}, Retry-After {headers.get('retry-after')}: {response.text[:300]}"
    if call.method == "HEAD":
        return None
    if call.page:
        html = headers["content-type"].startswith("text/html")
        return None if html and "Service unavailable" in response.text else "not an HTML page"
    body = response.json()
    if call.path in HEALTH:  # the probe's own body
        return None if body["status"] == "unavailable" else f"health says {body}"
    detail = body.get("detail", "")
    return None if detail.startswith("the database is unavailable (") else f"detail {body}"


def made_world(server: PgServer, auth: str) -> tuple[Any, list[Call]]:
    app = create_app(Settings(database_url=server.url, auth=auth), recover=False)
    token = make_keys(server.url).root if auth == "on" else None
    factory = app.state.session_factory
    study_id = owned_study(factory, None)
    keep_a_model(factory, study_id)
    return app, calls(app, study_id, owned_dataset(factory, None), token)


@pytest.mark.parametrize("auth", ["off", "on"])
def test_every_route_answers_503_while_the_database_is_down_then_recovers(
    server: PgServer, auth: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    app, todo = made_world(server, auth)
    assert len(todo) >= 40, "the route table was not read"
    reads = [c for c in todo if c.method in ("GET", "HEAD")]
    with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as client:
        before = [f"{c.method} {c.path}: {r.status_code}" for c, r in answers(client, reads)]
        assert all(line.endswith(": 200") for line in before), before
        caplog.clear()
        server.stop()
        try:
            during = answers(client, todo)
        finally:
            server.start()
        # Back by itself: the same app, reads as before, changes made or refused (4xx).
        after_reads = answers(client, reads)
        after_writes = answers(client, [c for c in todo if c not in reads])
    wrong = [f"{c.method} {c.path}: {p}" for c, r in during if (p := outage_problem(c, r, auth))]
    assert not wrong, "while the database was down:\n" + "\n".join(wrong)
    not_back = [f"{c.method} {c.path}: {r.status_code}" for c, r in after_reads]
    assert all(line.endswith(": 200") for line in not_back), not_back
    refused = [(c.method, c.path, r.status_code, r.text[:200]) for c, r in after_writes]
    assert all(status < 500 for _, _, status, _ in refused), refused
    # One line per refused request, no traceback.
    lines = [r for r in caplog.records if r.name == "hpsearch.errors"]
    assert len(lines) == sum(r.status_code == 503 for c, r in during if c.path not in HEALTH)
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in lines)


def answers(client: TestClient, todo: list[Call]) -> list[tuple[Call, httpx.Response]]:
    return [(c, client.request(c.method, **c.kwargs)) for c in todo]


def test_the_reaper_carries_on_after_an_outage_with_one_line_each_way(
    server: PgServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The API's lost-trial reaper says once that the database went and once that it came
    back (no traceback per pass), and reaps again after it returned."""
    caplog.set_level(logging.WARNING)
    settings = Settings(database_url=server.url, grace_period=1.0, heartbeat_interval=0.5)
    app = create_app(settings)  # with its reaper

    def said(words: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage().startswith(words)]

    with TestClient(app):
        server.stop()
        try:
            wait_for(lambda: said("database unavailable ("), "the reaper to meet the outage")
        finally:
            server.start()
        wait_for(lambda: said("database back after"), "the reaper to see the database back")
        study_id = owned_study(app.state.session_factory, None)  # its trial 1: silent
        wait_for(lambda: not running(app, study_id), "the reaper to reap a silent trial")
    assert len(said("database unavailable (")) == len(said("database back after")) == 1
    assert "answering 503 until it is back" in said("database unavailable (")[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def running(app: Any, study_id: int) -> list[int]:
    with store.session_scope(app.state.read_session_factory) as s:
        rows = s.scalars(
            select(store.TrialRow.number).where(
                store.TrialRow.study_id == study_id, store.TrialRow.state == store.T_RUNNING
            )
        )
        return list(rows)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> None:
    """Poll ``check`` until it holds (the bound only stops a broken test, it measures nothing)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        time.sleep(0.05)
