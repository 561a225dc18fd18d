"""Recent answers to the study reads that watchers poll: a study's status, leaderboard,
changes, page and live feed.

Fifty people (or scripts) watching a study ask for the same few answers many times a
second, and each answer costs several queries and a render while the workers that share
the machine are training. An answer made less than ``HPS_READ_CACHE_S`` seconds ago (default
1) is sent again instead of being made anew:

- Only to a caller whose access is checked against the database first, as for any read: a
  revoked key, or a study made private, is refused at once, whatever is cached.
- The JSON answers are the same for every reader and shared; a page shows who is signed in
  (and their CSRF token), so pages are kept per reader (per key or session cookie).
- What the workers wrote shows up at most ``HPS_READ_CACHE_S`` later; twice that for the
  callers who ask while an aged-out answer is being made anew: they get the one before
  rather than queue behind that one computation. A change made through this API (cancel,
  public) drops the study's answers, so it shows at once. A request with
  ``Cache-Control: no-cache`` always gets a fresh answer; ``HPS_READ_CACHE_S=0`` turns the
  cache off.

Two halves. The routes make their answers through :class:`StudyReads` (after their own
access check), which keeps each encoded and gzipped in the app's
:class:`~service.compute_cache.ComputeCache`; readers that ask while an answer is being made
wait for it. :class:`CachedReads`, a middleware, sends a kept answer for the same path and
query after one access check (one read, on the event loop), without the router, the
dependency injection and the five thread hops of a routed request: that is most of what a
poll costs.
It knows no routes: what is cacheable is what the routes kept.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from search import store
from service.auth import (
    SESSION_COOKIE,
    KeyUse,
    Principal,
    PrincipalDep,
    ReadableStudyDep,
    can_read,
    credential,
    principal_of,
    record_use,
    token_hash,
)
from service.compute_cache import ComputeCache
from service.errors import HpsError
from service.recent_changes import RecentChanges
from service.schemas import StudyPublic
from service.views import study_public

log = logging.getLogger(__name__)
GZIP_MIN = 1000  # as the app's GZipMiddleware: smaller answers are sent as they are
MAX_ANSWERS = 512  # the least recently used go first beyond this (a page is ~50 kB)

Key = tuple[str, str, str | None]  # path, query, the reader's credential (pages) or None


@dataclass(frozen=True)
class Answer:
    study_id: int
    reader: Principal | None  # whom a page was made for; None: any reader of the study
    media_type: str
    body: bytes
    gzipped: bytes | None  # None when too small to be worth it


class NotKept(Exception):
    """A route answered something other than 200 (a redirect): sent, not kept."""

    def __init__(self, response: Response) -> None:
        self.response = response


Summary = tuple[dict[str, int], StudyPublic]  # trials by state, and the study as the API shows it


def read_cache(ttl_s: float) -> ComputeCache[Answer]:
    return ComputeCache(MAX_ANSWERS, ttl_s=ttl_s)


def summary_cache(ttl_s: float) -> ComputeCache[Summary]:
    return ComputeCache(MAX_ANSWERS, ttl_s=ttl_s)


def forget_study(request: Request, study_id: int) -> None:
    """Drop a study's answers after a change made through this process."""
    cache: ComputeCache[Answer] = request.app.state.read_cache
    cache.forget(lambda _, answer: answer.study_id == study_id)
    summaries: ComputeCache[Summary] = request.app.state.study_summaries
    summaries.forget(lambda key, _: key == study_id)
    request.app.state.recent_changes.forget(study_id)


def _credential(request: Request) -> str:
    """Whom a page is for, as the auth reads it: the key, else the session cookie."""
    raw = request.headers.get("authorization") or request.cookies.get(SESSION_COOKIE) or ""
    return token_hash(raw) if raw else ""


def _key(scope: Scope, reader: str | None) -> Key:
    return scope["path"], scope["query_string"].decode("latin-1"), reader


def _send(request: Request, answer: Answer) -> Response:
    headers = {"Vary": "Accept-Encoding"}
    if answer.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"  # the app's GZipMiddleware leaves it be
        return Response(answer.gzipped, media_type=answer.media_type, headers=headers)
    return Response(answer.body, media_type=answer.media_type, headers=headers)


def _fresh_asked(request: Request) -> bool:
    return "no-cache" in request.headers.get("cache-control", "")


class StudyReads:
    """One routed request's way to the cache, for a study the caller may read (the
    dependency that makes it checks that first)."""

    def __init__(self, request: Request, row: store.StudyRow, principal: Principal) -> None:
        self.request = request
        self.study_id = row.id
        self.principal = principal

    def _answer(self, per_reader: bool, make: Callable[[], Response]) -> Response:
        cache: ComputeCache[Answer] = self.request.app.state.read_cache
        reader = self.principal if per_reader else None

        def encode() -> Answer:
            made = make()
            if made.status_code != 200:
                raise NotKept(made)
            body = bytes(made.body)
            gzipped = gzip.compress(body, compresslevel=5) if len(body) >= GZIP_MIN else None
            return Answer(self.study_id, reader, made.media_type or "text/plain", body, gzipped)

        key = _key(self.request.scope, _credential(self.request) if per_reader else None)
        try:
            if not cache.ttl_s:
                answer = encode()
            else:
                answer = cache.get(key, encode, fresh=_fresh_asked(self.request))
        except NotKept as exc:
            return exc.response
        return _send(self.request, answer)

    def summary(self, session: Session, row: store.StudyRow) -> Summary:
        """The study's trial counts and its API form (status, counts, best trial): shared
        by its status, changes, page and live feed for the same age as their answers."""

        def make() -> Summary:
            counts = store.trial_counts(session=session, study_ids=[row.id])[row.id]
            return counts, study_public(session, row, counts)

        cache: ComputeCache[Summary] = self.request.app.state.study_summaries
        if not cache.ttl_s:
            return make()
        return cache.get(row.id, make, fresh=_fresh_asked(self.request))

    def changes(self, session: Session, row: store.StudyRow, cursor: int) -> store.Changes:
        """The study's changes since ``cursor``, from the snapshot its watchers share
        (:mod:`service.recent_changes`)."""
        recent: RecentChanges = self.request.app.state.recent_changes
        return recent.since(session, row, cursor)

    def json(self, make: Callable[[], BaseModel]) -> Response:
        """A pydantic answer, encoded as FastAPI encodes a route's ``response_model``."""
        return self._answer(
            False,
            lambda: Response(make().model_dump_json(by_alias=True), media_type="application/json"),
        )

    def feed(self, make: Callable[[], Response]) -> Response:
        """A rendered answer that is the same for every reader (the live page's feed)."""
        return self._answer(False, make)

    def page(self, make: Callable[[], Response]) -> Response:
        """A page: kept per reader (it names them and carries their CSRF token)."""
        return self._answer(True, make)


async def study_reads(
    request: Request, row: ReadableStudyDep, principal: PrincipalDep
) -> StudyReads:
    return StudyReads(request, row, principal)


StudyReadsDep = Annotated[StudyReads, Depends(study_reads)]


class CachedReads:
    """Sends a kept answer to a GET for the same path and query, once the caller is
    checked; anything else goes on to the app."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state  # the app's: settings, loop_reads, read_cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cache: ComputeCache[Answer] = self.state.read_cache
        if scope["type"] != "http" or scope["method"] != "GET" or not cache.ttl_s:
            return await self.app(scope, receive, send)
        request = Request(scope)
        answer = None
        if not _fresh_asked(request):
            # While one caller makes an aged-out answer anew, the others get the one before
            # (at most two ages old) instead of queueing behind it in the thread pool.
            for key in (_key(scope, None), _key(scope, _credential(request))):
                answer = cache.peek(key, stale_for=cache.ttl_s)
                if answer is not None:
                    break
        if answer is None:
            return await self.app(scope, receive, send)
        allowed, use = await self._may_read(request, answer)
        if use is not None and use.due:  # a write, once a minute per key: never on the loop
            await run_in_threadpool(record_use, self.state, use)
        if not allowed:
            return await self.app(scope, receive, send)
        await _send(request, answer)(scope, receive, send)

    async def _may_read(self, request: Request, answer: Answer) -> tuple[bool, KeyUse | None]:
        """Whether this caller may have ``answer``, as the routes decide: the key or session,
        then the study's owner and ``public``, read now, in one read on the event loop's own
        connection (:mod:`search.store._loop_reads`). Anything unusual (a bad key, a
        database error) goes on to the app, which answers it as it always does."""
        use = None
        try:
            presented = credential(
                self.state.settings,
                request.headers.get("authorization"),
                request.cookies.get(SESSION_COOKIE),
            )
            read = store.read_study_and_key(
                answer.study_id, key_hash=presented.key_hash, session_hash=presented.session_hash
            )
            found = await self.state.loop_reads.run(read)
            if found is None:  # no such study (any more)
                return False, None
            study, key = found
            principal, use = principal_of(presented, key)
            if answer.reader is not None and answer.reader != principal:
                return False, use
            return can_read(principal, study), use
        except HpsError:
            return False, use
        except Exception:
            log.debug("cached read not sent", exc_info=True)
            return False, use


__all__ = [
    "Answer",
    "CachedReads",
    "StudyReads",
    "StudyReadsDep",
    "forget_study",
    "read_cache",
]
