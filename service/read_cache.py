"""Exact answers to the study reads that watchers poll (a study's status, leaderboard,
changes, page and live feed), labelled with the study's version.

Every study has a version (:func:`search.store.study_version`) that changes whenever
anything a reader can see of it changes. After the route's own access check (the routed
dependency, as for any read, which reads the version in the same thread hop):

- The version is sent as a weak ``ETag`` with ``Cache-Control: private, no-cache``. A
  caller that sends it back in ``If-None-Match`` gets ``304 Not Modified`` before anything
  is rendered: the live page and the CLI's ``watch`` do, so a study that did not change
  costs them one small read.
- An answer is made once per (study, version, path and query, reader where a page names
  one) and kept in the app's :class:`~service.compute_cache.ComputeCache`; the other
  watchers of the same view get it until the version moves. Nothing ages: an answer is
  never older than the version it was asked at, and a change (a trial's heartbeat, a study
  made private, cancelled) moves the version, and so does the study starting or ceasing
  to wait for a worker (:func:`search.store.study_waiting`, which moves with the clock).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from search import store
from service.auth import SESSION_COOKIE, PrincipalDep, readable_study, token_hash
from service.compute_cache import ComputeCache
from service.deps import ReadSessionDep, StudyId
from service.routes.health import VERSION
from service.schemas import StudyPublic
from service.views import read_progress, study_public

MAX_ANSWERS = 512  # the least recently used go first beyond this (a page is ~50 kB)
CACHE_CONTROL = "private, no-cache"  # keep it, but ask (If-None-Match) before each use


@dataclass(frozen=True)
class Answer:
    media_type: str
    body: bytes


class NotKept(Exception):
    """A route answered something other than 200 (a redirect): sent, not kept."""

    def __init__(self, response: Response) -> None:
        self.response = response


Summary = tuple[dict[str, int], StudyPublic]  # trials by state, and the study as the API shows it


def read_cache() -> ComputeCache[Answer]:
    return ComputeCache(MAX_ANSWERS)


def summary_cache() -> ComputeCache[Summary]:
    return ComputeCache(MAX_ANSWERS)


def _reader(request: Request) -> str:
    """Whom a page is for, as the auth reads it (the key, else the session cookie), as a
    short digest: pages name the reader and carry their CSRF token."""
    raw = request.headers.get("authorization") or request.cookies.get(SESSION_COOKIE) or ""
    return token_hash(raw)[:16] if raw else "-"


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, RFC 9110 13.1.2)."""
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag.removeprefix("W/") in tags


class StudyReads:
    """One routed request's way to a study's versioned answers: the study, read and
    access-checked, and its version, both read by the dependency that makes it
    (``study_reads``) in one thread hop, so a 304 or a kept answer needs no other."""

    def __init__(
        self, request: Request, row: store.StudyRow, session: Session, *, grace_s: float
    ) -> None:
        self.request = request
        self.row = row
        self.session = session
        self.grace_s = grace_s
        # Read before the answer it labels (with whether the study is waiting for a
        # worker, which the answer then shows).
        self.waiting = store.study_waiting(session=session, study=row, grace_s=grace_s)
        self.version = store.study_version(session=session, study=row, waiting=self.waiting)

    async def _answer(self, per_reader: bool, make: Callable[[], Response]) -> Response:
        reader = _reader(self.request) if per_reader else ""
        digest = hashlib.blake2b(f"{VERSION}|{self.version}|{reader}".encode(), digest_size=9)
        etag = f'W/"{digest.hexdigest()}"'
        headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
        if _matches(self.request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)

        def encode() -> Answer:
            made = make()
            if made.status_code != 200:
                raise NotKept(made)
            return Answer(made.media_type or "text/plain", bytes(made.body))

        scope = self.request.scope
        key = (self.row.id, self.version, (scope["path"], scope["query_string"], reader))
        cache: ComputeCache[Answer] = self.request.app.state.read_cache
        answer = cache.kept(key)
        if answer is None:  # made now, in the thread pool (it reads the database)
            try:
                answer = await run_in_threadpool(cache.get, key, encode)
            except NotKept as exc:
                return exc.response
        return Response(answer.body, headers=headers, media_type=answer.media_type)

    def summary(self) -> Summary:
        """The study's trial counts and its API form (status, counts, best trial): made
        once per version, shared by its status, changes, page and live feed."""

        def make() -> Summary:
            session, row, grace_s = self.session, self.row, self.grace_s
            progress = read_progress(session, [row], grace_s=grace_s, waiting=self.waiting)
            study = study_public(session, row, grace_s=grace_s, progress=progress[row.id])
            return progress[row.id].raw, study

        cache: ComputeCache[Summary] = self.request.app.state.study_summaries
        return cache.get((self.row.id, self.version), make)

    async def json(self, make: Callable[[], BaseModel]) -> Response:
        """A pydantic answer, encoded as FastAPI encodes a route's ``response_model``."""
        return await self._answer(
            False,
            lambda: Response(make().model_dump_json(by_alias=True), media_type="application/json"),
        )

    async def feed(self, make: Callable[[], Response]) -> Response:
        """A rendered answer that is the same for every reader (the live page's feed)."""
        return await self._answer(False, make)

    async def page(self, make: Callable[[], Response]) -> Response:
        """A page: made per reader (it names them and carries their CSRF token)."""
        return await self._answer(True, make)


def study_reads(
    request: Request, study_id: StudyId, session: ReadSessionDep, principal: PrincipalDep
) -> StudyReads:
    """The study, through its access check (``readable_study``: this dependency is the
    route's one), and its version, read in one thread hop. The route then answers a 304
    or a kept answer in the event loop, and makes a new one in the thread pool."""
    row = readable_study(study_id, session, principal)
    return StudyReads(request, row, session, grace_s=request.app.state.settings.grace_period)


StudyReadsDep = Annotated[StudyReads, Depends(study_reads)]


__all__ = ["Answer", "StudyReads", "StudyReadsDep", "read_cache", "summary_cache"]
