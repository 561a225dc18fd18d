"""Bad input and limits: every refusal is a 4xx with one body shape ``{"detail": ...}``;
an unexpected error is a 500 that names only the request id; request ids, JSON logs and
the security headers of pages."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from hashlib import sha256

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.deps import get_read_db
from service.logs import handler
from service.middleware import EMPTY_STYLE_HASH
from service.settings import Settings
from tests.study_data import SPEC

SMALL = SPEC | {"search": SPEC["search"] | {"n_trials": 2}}


@pytest.fixture(scope="module")
def client(module_migrated_url: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=module_migrated_url,
        max_trials=20,
        max_epochs=5,
        max_spec_bytes=4096,
        max_body_bytes=8192,
    )
    with TestClient(create_app(settings, recover=False)) as c:
        yield c


def detail(response) -> object:  # type: ignore[no-untyped-def]
    body = response.json()
    assert list(body) == ["detail"], body
    return body["detail"]


def test_body_and_spec_size(client: TestClient) -> None:
    big = SMALL | {"name": "x" * 5000}
    r = client.post("/api/v1/studies", json=big)
    assert r.status_code == 413
    assert detail(r) == "spec (HPS_MAX_SPEC_BYTES) too large: the limit is 4,096 bytes"
    r = client.patch("/api/v1/studies/1", content=b"{" + b" " * 9000 + b"}")
    assert r.status_code == 413 and "HPS_MAX_BODY_BYTES" in str(detail(r))

    def chunks() -> Iterator[bytes]:  # no Content-Length: the body is counted as it comes
        yield b'{"name": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    r = client.post(
        "/api/v1/studies", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413 and "HPS_MAX_SPEC_BYTES" in str(detail(r))


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            {"search": SPEC["search"] | {"n_trials": 21}},
            ["body", "search", "n_trials"],
            "HPS_MAX_TRIALS",
        ),
        ({"training": {"epochs": 6}}, ["body", "training", "epochs"], "HPS_MAX_EPOCHS"),
        (
            {
                "search": SPEC["search"]
                | {"n_trials": 2, "space": {"epochs": {"type": "int", "low": 1, "high": 9}}}
            },
            ["body", "search", "space", "epochs"],
            "HPS_MAX_EPOCHS",
        ),
        ({"name": "<script>"}, ["body", "name"], "String should match pattern"),
        (
            {"search": SPEC["search"] | {"n_trials": 10**6}},
            ["body", "search", "n_trials"],
            "less than",
        ),
    ],
)
def test_caps_and_names_are_422s_naming_the_field(
    client: TestClient, change: dict, field: list[str], words: str
) -> None:
    r = client.post("/api/v1/studies", json=SMALL | change)
    assert r.status_code == 422, r.text
    [error] = detail(r)  # type: ignore[misc]
    assert error["loc"] == field and words in error["msg"]


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/studies?limit=501",
        "/api/v1/studies?limit=0",
        "/api/v1/studies?offset=-1",
        "/api/v1/studies?offset=99999999999",
        "/api/v1/studies/1/trials?limit=100000",
        "/api/v1/workers?limit=10000",
        "/api/v1/studies/1/leaderboard?top=100000",
    ],
)
def test_pagination_bounds(client: TestClient, url: str) -> None:
    r = client.get(url)
    assert r.status_code in (404, 422), r.text
    if r.status_code == 422:
        [error] = detail(r)  # type: ignore[misc]
        assert error["loc"][0] == "query"


def test_every_error_has_one_shape(client: TestClient) -> None:
    for response in (
        client.get("/api/v1/studies/999999"),
        client.get("/no/such/route"),
        client.delete("/api/v1/studies"),
        client.post(
            "/api/v1/studies", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
    ):
        assert response.status_code in (404, 405, 422)
        assert detail(response)


def test_unexpected_errors_name_only_the_request_id(module_migrated_url: str) -> None:
    app = create_app(Settings(database_url=module_migrated_url), recover=False)

    def broken() -> Iterator[None]:
        raise RuntimeError("SELECT secret FROM hps_api_keys")
        yield

    app.dependency_overrides[get_read_db] = broken
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/api/v1/studies/1", headers={"X-Request-ID": "req-42"})
    assert r.status_code == 500
    assert r.json() == {
        "detail": "internal server error (request id req-42); the server log has the cause"
    }
    assert "SELECT" not in r.text and "Traceback" not in r.text


def test_request_ids(client: TestClient) -> None:
    made = client.get("/health").headers["X-Request-ID"]
    assert len(made) == 32
    assert (
        client.get("/health", headers={"X-Request-ID": "abc-1.2_3"}).headers["X-Request-ID"]
        == "abc-1.2_3"
    )
    odd = client.get("/health", headers={"X-Request-ID": "bad id\x7f" * 3})
    assert (
        odd.headers["X-Request-ID"] != "bad id\x7f" * 3 and len(odd.headers["X-Request-ID"]) == 32
    )


def test_json_logs_carry_the_request_id(client: TestClient) -> None:
    out = handler("json")
    buffer = io.StringIO()
    out.setStream(buffer)  # type: ignore[attr-defined]
    access = logging.getLogger("hpsearch.access")
    access.addHandler(out)
    access.setLevel(logging.INFO)
    try:
        client.get("/api/v1/studies/999999", headers={"X-Request-ID": "trace-me"})
    finally:
        access.removeHandler(out)
    [line] = [json.loads(x) for x in buffer.getvalue().splitlines()]
    assert line["request_id"] == "trace-me"
    assert line["message"].startswith("GET /api/v1/studies/999999 404")
    assert {"time", "level", "logger"} <= set(line)


def test_pages_send_security_headers(client: TestClient) -> None:
    r = client.get("/", headers={"Accept": "text/html"})
    assert r.status_code == 200
    csp = r.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"  # no eval: plotly.js is its strict bundle
    style = directives["style-src"].split()
    assert style[0] == "'self'" and all(s.startswith("'sha256-") for s in style[1:])
    # style attributes: only the empty one plotly's colorbar writes (the hash of "")
    assert directives["style-src-attr"] == "'unsafe-hashes' " + EMPTY_STYLE_HASH
    assert "'sha256-" + base64.b64encode(sha256(b"").digest()).decode() + "'" == EMPTY_STYLE_HASH
    assert directives["frame-ancestors"] == "'none'" and "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "same-origin"  # never to another site
    assert "<script>" not in r.text and " style=" not in r.text  # nothing inline to allow


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, True),
        ({"Sec-Fetch-Site": "same-site", "Origin": "http://testserver:3000"}, True),
        ({"Origin": "https://evil.example"}, True),
        ({"Origin": "null"}, True),
        ({"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"}, False),
        ({"Origin": "http://testserver"}, False),
        ({}, False),  # not a browser: its key decides
    ],
)
def test_cross_site_writes_are_refused(
    client: TestClient, headers: dict[str, str], refused: bool
) -> None:
    r = client.post("/api/v1/studies/999999/cancel", headers=headers)
    assert r.status_code == (403 if refused else 404)
    assert detail(r) == ("cross-site request refused" if refused else "study 999999 not found")
