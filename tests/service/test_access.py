"""Who gets what, over every route of the app (API and pages) x {no key, owner, another
user, admin, a public study with no key}: the expected status of each cell comes from
``ROUTES``, and a route missing from ``ROUTES`` fails the test, so none is added without
deciding who may use it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from search import store
from service.app import create_app
from service.pages.assets import plotly_asset
from service.settings import Settings
from tests.service.auth_helpers import (
    Keys,
    bearer,
    keep_a_model,
    make_keys,
    owned_dataset,
    owned_study,
)
from tests.study_data import SPEC

OPEN, READ, WRITE, SIGNED_IN = "open", "read", "write", "signed in"
OWNED, OWNED_WRITE = "owned", "owned, changed"  # a dataset: never public
LISTED = "listed"  # everybody; what is listed depends on the caller (test_study_list)

# (method, path) -> (access, status on success). READ: owner, admin, and anyone for a
# public study; WRITE: owner and admin only; OWNED(_WRITE): a dataset's owner and admins
# only, public study or not; SIGNED_IN: any key; OPEN and LISTED: everybody.
ROUTES: dict[tuple[str, str], tuple[str, int]] = {
    ("GET", "/api/v1/studies"): (LISTED, 200),
    ("POST", "/api/v1/studies"): (SIGNED_IN, 201),
    ("GET", "/api/v1/studies/{study_id}"): (READ, 200),
    ("PATCH", "/api/v1/studies/{study_id}"): (WRITE, 200),
    ("GET", "/api/v1/studies/{study_id}/leaderboard"): (READ, 200),
    ("GET", "/api/v1/studies/{study_id}/trials"): (READ, 200),
    ("GET", "/api/v1/studies/{study_id}/trials.csv"): (READ, 200),
    ("GET", "/api/v1/studies/{study_id}/changes"): (READ, 200),
    ("GET", "/api/v1/studies/{study_id}/trials/{number}"): (READ, 200),
    ("POST", "/api/v1/studies/{study_id}/cancel"): (WRITE, 200),
    # The REST trial API: the study under test trains a built-in model (claim: 409) and its
    # trial 0 holds no lease (409); what matters here is who gets that far.
    ("POST", "/api/v1/studies/{study_id}/trials/claim"): (WRITE, 409),
    ("POST", "/api/v1/studies/{study_id}/trials/{number}/report"): (WRITE, 409),
    ("POST", "/api/v1/studies/{study_id}/trials/{number}/heartbeat"): (WRITE, 409),
    ("POST", "/api/v1/studies/{study_id}/trials/{number}/complete"): (WRITE, 409),
    ("POST", "/api/v1/studies/{study_id}/trials/{number}/fail"): (WRITE, 409),
    ("GET", "/api/v1/studies/{study_id}/plots"): (READ, 200),
    ("GET", "/api/v1/studies/{study_id}/importance"): (READ, 200),
    ("GET", "/api/v1/compare"): (READ, 200),
    ("GET", "/api/v1/studies/{study_id}/model"): (READ, 200),
    ("POST", "/api/v1/datasets"): (SIGNED_IN, 201),
    ("GET", "/api/v1/datasets"): (SIGNED_IN, 200),
    ("GET", "/api/v1/datasets/{dataset_id}"): (OWNED, 200),
    ("DELETE", "/api/v1/datasets/{dataset_id}"): (OWNED_WRITE, 204),
    ("GET", "/api/v1/workers"): (SIGNED_IN, 200),
    ("GET", "/api/v1/health"): (OPEN, 200),
    ("GET", "/health"): (OPEN, 200),
    ("GET", "/openapi.json"): (OPEN, 200),
    ("GET", "/docs"): (OPEN, 200),
    ("GET", "/docs/oauth2-redirect"): (OPEN, 200),
    ("GET", "/redoc"): (OPEN, 200),
    ("GET", "/static/{name}"): (OPEN, 200),
    ("GET", "/assets/plotly-{version}.min.js"): (OPEN, 200),
    ("GET", "/signin"): (OPEN, 200),
    ("POST", "/signin"): (OPEN, 303),
    ("POST", "/signout"): (OPEN, 303),
    ("GET", "/"): (LISTED, 200),
    ("GET", "/studies/{study_id}"): (READ, 200),
    ("GET", "/studies/{study_id}/live"): (READ, 200),
    ("GET", "/studies/{study_id}/trials/{number}"): (READ, 200),
    ("GET", "/studies/{study_id}/cancel"): (WRITE, 200),
    ("POST", "/studies/{study_id}/cancel"): (WRITE, 303),
    ("GET", "/compare"): (READ, 200),
    ("GET", "/workers"): (SIGNED_IN, 200),
}
CALLERS = ["no key", "owner", "other user", "admin", "public, no key"]


def app_routes() -> set[tuple[str, str]]:
    app = create_app(Settings(database_url="sqlite://", auth="on"), recover=False)
    found = set()
    for route in iter_route_contexts(app.routes):  # included routers flattened
        assert route.path is not None
        path = route.path_format  # without convertors: /trials/{number}, not {number:int}
        found |= {(m, path) for m in route.methods or () if m != "HEAD"}
    return found


def test_every_route_has_a_row() -> None:
    routes = app_routes()
    missing = sorted(routes - set(ROUTES))
    assert not missing, f"routes with no row in ROUTES (decide who may use them): {missing}"
    assert not sorted(set(ROUTES) - routes), "rows for routes that no longer exist"


@dataclass
class World:
    client: TestClient
    keys: Keys
    factory: Any


@pytest.fixture(scope="module")
def world(module_migrated_url: str) -> Iterator[World]:
    app = create_app(Settings(database_url=module_migrated_url, auth="on"), recover=False)
    keys = make_keys(module_migrated_url)
    with TestClient(app, follow_redirects=False) as client:
        yield World(client, keys, app.state.session_factory)


def is_page(path: str) -> bool:
    return not path.startswith(("/api/", "/health", "/openapi")) and not path.endswith("/live")


def expected(access: str, ok: int, caller: str, path: str) -> int:
    refused = 303 if is_page(path) else 401  # a page sends the browser to /signin
    if access in (OPEN, LISTED):
        return ok
    if caller == "no key":
        return refused
    if caller == "public, no key":
        return ok if access == READ else refused
    if caller == "other user" and access in (READ, WRITE, OWNED, OWNED_WRITE):
        return 404
    return ok


def request_for(w: World, method: str, path: str, study_id: int, dataset_id: int) -> dict[str, Any]:
    url = (
        path.replace("{study_id}", str(study_id))
        .replace("{dataset_id}", str(dataset_id))
        .replace("{number}", "0")
        .replace("{name}", "style.css")
        .replace("{version}", plotly_asset().version)
    )
    if path.endswith("/compare"):
        url += f"?ids={study_id}"
    kwargs: dict[str, Any] = {"method": method, "url": url, "headers": {}}
    if is_page(path):
        kwargs["headers"]["Accept"] = "text/html"
    if (method, path) == ("POST", "/api/v1/studies"):
        kwargs["json"] = SPEC | {"search": SPEC["search"] | {"n_trials": 1}}
    elif method == "PATCH":
        kwargs["json"] = {"public": True}
    elif path.startswith("/api/v1/studies/{study_id}/trials/{number}/"):
        body = {"lease": "not-held", "epoch": 0, "metrics": {"dev_loss": 1.0}, "reason": "x"}
        what = path.rsplit("/", 1)[1]
        fields = {"report": ("epoch", "metrics"), "complete": ("metrics",), "fail": ("reason",)}
        kwargs["json"] = {k: v for k, v in body.items() if k in ("lease", *fields.get(what, ()))}
    elif (method, path) == ("POST", "/api/v1/datasets"):
        table = "x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(40))
        kwargs["files"] = {"file": (f"t{uuid.uuid4().hex}.csv", table.encode(), "text/csv")}
        kwargs["data"] = {"target": "y", "name": f"t{uuid.uuid4().hex}"}
    elif path == "/signin" and method == "POST":
        kwargs["data"] = {"key": w.keys.alice, "next": "/"}
    return kwargs


@pytest.mark.parametrize("caller", CALLERS)
def test_route_matrix(world: World, caller: str) -> None:
    keys = world.keys
    token = {"owner": keys.alice, "other user": keys.bob, "admin": keys.root}.get(caller)
    failures = []
    public = caller == "public, no key"
    shared = owned_study(world.factory, "alice", public=public)  # for the reads
    keep_a_model(world.factory, shared)
    dataset = owned_dataset(world.factory, "alice")
    for (method, path), (access, ok) in sorted(ROUTES.items()):
        fresh = access == WRITE  # a change (cancel) must find its study as new
        study_id = owned_study(world.factory, "alice", public=public) if fresh else shared
        # A deletion must find its dataset.
        dataset_id = owned_dataset(world.factory, "alice") if access == OWNED_WRITE else dataset
        kwargs = request_for(world, method, path, study_id, dataset_id)
        kwargs["headers"] |= bearer(token)
        response = world.client.request(**kwargs)
        world.client.cookies.clear()  # POST /signin set one: each cell is its own caller
        want = expected(access, ok, caller, path)
        if response.status_code != want:
            failures.append(f"{method} {path}: {response.status_code}, expected {want}")
        elif want == 303 and want != ok:
            assert response.headers["location"].startswith("/signin?next=")
    assert not failures, f"{caller}:\n" + "\n".join(failures)


def test_datasets_belong_to_their_uploader(world: World) -> None:
    mine, theirs = owned_dataset(world.factory, "alice"), owned_dataset(world.factory, "bob")

    def ids(token: str) -> set[int]:
        page = world.client.get("/api/v1/datasets?limit=500", headers=bearer(token)).json()
        return {d["id"] for d in page["data"]}

    assert mine in ids(world.keys.alice) and theirs not in ids(world.keys.alice)
    assert {mine, theirs} <= ids(world.keys.root)
    # A spec naming another user's dataset is refused like a missing one.
    spec = SPEC | {"dataset": {"id": theirs}, "search": SPEC["search"] | {"n_trials": 1}}
    refused = world.client.post("/api/v1/studies", json=spec, headers=bearer(world.keys.alice))
    missing = spec | {"dataset": {"id": theirs + 10_000}}
    gone = world.client.post("/api/v1/studies", json=missing, headers=bearer(world.keys.alice))
    assert refused.status_code == gone.status_code == 422
    assert f"no uploaded dataset with id {theirs}" in refused.text


def test_a_missing_study_and_someone_elses_answer_alike(world: World) -> None:
    mine = owned_study(world.factory, "alice")
    missing = mine + 10_000
    c = world.client
    for url in ("/api/v1/studies/{}", "/api/v1/studies/{}/trials/0"):
        theirs = c.get(url.format(mine), headers=bearer(world.keys.bob))
        nothing = c.get(url.format(missing), headers=bearer(world.keys.bob))
        assert theirs.status_code == nothing.status_code == 404
        assert theirs.json()["detail"] == f"study {mine} not found"
        assert nothing.json()["detail"] == f"study {missing} not found"
        anonymous = [c.get(url.format(i)) for i in (mine, missing)]
        assert [r.status_code for r in anonymous] == [401, 401]
        assert anonymous[0].json() == anonymous[1].json()
        assert anonymous[0].headers["WWW-Authenticate"] == "Bearer"


def test_study_list_shows_own_and_public_studies(migrated_url: str) -> None:
    """Own and public studies for a user, all for an admin, public ones with no key: in
    the API (with owner and public marked, and counts that page) and on the page."""
    app = create_app(Settings(database_url=migrated_url, auth="on"), recover=False)
    keys = make_keys(migrated_url)
    factory = app.state.session_factory
    alice_private = owned_study(factory, "alice")
    alice_public = owned_study(factory, "alice", public=True)
    bob_private = owned_study(factory, "bob")
    bob_public = owned_study(factory, "bob", public=True)
    unowned = owned_study(factory, None)  # submitted before owners: admins only
    seen = {
        "alice": [bob_public, alice_public, alice_private],  # newest first
        "bob": [bob_public, bob_private, alice_public],
        "root": [unowned, bob_public, bob_private, alice_public, alice_private],
        None: [bob_public, alice_public],
    }
    with TestClient(app, follow_redirects=False) as c:
        for who, want in seen.items():
            token = getattr(keys, who) if who else None
            listed = c.get("/api/v1/studies?limit=500", headers=bearer(token))
            assert listed.status_code == 200, who
            body = listed.json()
            assert [x["id"] for x in body["data"]] == want and body["count"] == len(want), who
            marks = {x["id"]: (x["owner"], x["public"]) for x in body["data"]}
            assert marks.get(bob_public) == ("bob", True) and marks.get(alice_public) == (
                "alice",
                True,
            )
            paged = c.get("/api/v1/studies?limit=1&offset=1", headers=bearer(token)).json()
            assert [x["id"] for x in paged["data"]] == want[1:2] and paged["count"] == len(want)

            page = c.get("/", headers=bearer(token) | {"Accept": "text/html"})
            assert page.status_code == 200, who
            rows = re.findall(r'<tr data-study="(\d+)"', page.text)
            assert [int(r) for r in rows] == want, who
            assert page.text.count('class="badge badge-public"') == 2
            assert re.search(
                rf'<tr data-study="{bob_public}">.*?<td class="owner">bob</td>', page.text, re.S
            )
        # Listing opens nothing else: bob still cannot read or change alice's private study,
        # nor change her public one; nobody without a key reads a private one.
        assert (
            c.get(f"/api/v1/studies/{alice_private}", headers=bearer(keys.bob)).status_code == 404
        )
        assert (
            c.post(f"/api/v1/studies/{alice_public}/cancel", headers=bearer(keys.bob)).status_code
            == 404
        )
        assert (
            c.patch(
                f"/api/v1/studies/{alice_public}", json={"public": False}, headers=bearer(keys.bob)
            ).status_code
            == 404
        )
        assert c.get(f"/api/v1/studies/{alice_private}").status_code == 401
        assert c.post(f"/api/v1/studies/{alice_public}/cancel").status_code == 401


def test_submitted_studies_belong_to_the_submitter(world: World) -> None:
    spec = SPEC | {"search": SPEC["search"] | {"n_trials": 1}}
    key = {"Idempotency-Key": "same-key-for-both"}
    a = world.client.post("/api/v1/studies", json=spec, headers=bearer(world.keys.alice) | key)
    b = world.client.post("/api/v1/studies", json=spec, headers=bearer(world.keys.bob) | key)
    assert a.status_code == b.status_code == 201
    assert (a.json()["owner"], b.json()["owner"]) == ("alice", "bob")
    assert a.json()["id"] != b.json()["id"]  # one user's request key never finds another's
    again = world.client.post("/api/v1/studies", json=spec, headers=bearer(world.keys.bob) | key)
    assert again.json()["id"] == b.json()["id"]


def test_publishing_opens_reads_only(world: World) -> None:
    sid = owned_study(world.factory, "alice")
    c = world.client
    assert c.get(f"/api/v1/studies/{sid}").status_code == 401
    r = c.patch(f"/api/v1/studies/{sid}", json={"public": True}, headers=bearer(world.keys.alice))
    assert r.status_code == 200 and r.json()["public"] is True
    assert c.get(f"/api/v1/studies/{sid}/leaderboard").status_code == 200
    assert c.get(f"/api/v1/studies/{sid}", headers=bearer(world.keys.bob)).status_code == 200
    assert c.post(f"/api/v1/studies/{sid}/cancel").status_code == 401
    bob_cancels = c.post(f"/api/v1/studies/{sid}/cancel", headers=bearer(world.keys.bob))
    assert bob_cancels.status_code == 404
    c.patch(f"/api/v1/studies/{sid}", json={"public": False}, headers=bearer(world.keys.root))
    assert c.get(f"/api/v1/studies/{sid}").status_code == 401


def test_workers_hide_studies_the_caller_cannot_read(world: World) -> None:
    sid = owned_study(world.factory, "alice")
    with store.session_scope(world.factory) as s:
        worker = store.register_worker(session=s, name="w", host="h", pid=1, device="cpu")
        store.set_worker_state(
            session=s, worker_id=worker, status=store.W_BUSY, study_id=sid, trial_number=1
        )
        s.get(store.WorkerRow, worker).stack = [1, 2, 3]  # a stack hides with its study

    def busy_with(token: str) -> dict[Any, Any]:
        rows = world.client.get("/api/v1/workers", headers=bearer(token)).json()["data"]
        return {r["study_id"]: (r["trial_number"], r["stack"]) for r in rows if r["id"] == worker}

    assert busy_with(world.keys.alice) == busy_with(world.keys.root) == {sid: (1, [1, 2, 3])}
    assert busy_with(world.keys.bob) == {None: (None, None)}
    html = {"Accept": "text/html"}
    shown = world.client.get("/workers", headers=bearer(world.keys.alice) | html).text
    assert f'<a href="/studies/{sid}/trials/3">3</a> (stacked)' in shown
    hidden = world.client.get("/workers", headers=bearer(world.keys.bob) | html)
    assert hidden.status_code == 200 and "(stacked)" not in hidden.text
    assert f"/studies/{sid}/" not in hidden.text


def test_a_bad_authorization_header_is_refused(world: World) -> None:
    for header in ("Bearer", "Basic abc", "Bearer hps_not-a-key", "token"):
        r = world.client.get("/api/v1/studies", headers={"Authorization": header})
        assert r.status_code == 401, header
        assert isinstance(r.json()["detail"], str)
