"""Who is asking: an API key (``Authorization: Bearer``), a browser signed in with one (the
session cookie), nobody, or everybody when ``HPS_AUTH=off``.

Keys are checked against the database on every request (an indexed lookup), so a revoked
key is refused at once. A key's ``last_used_at`` is written at most once a minute.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.engine import Engine

from search import store
from service.auth._tokens import csrf_token, same_csrf, same_hash, token_hash
from service.deps import SettingsDep
from service.errors import Forbidden, Unauthorized
from service.settings import Settings

log = logging.getLogger(__name__)
SESSION_COOKIE = "hps_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOUCH_EVERY = timedelta(minutes=1)
NO_KEY = "an API key is required: send 'Authorization: Bearer <key>' (pages: sign in)"


@dataclass(frozen=True)
class Principal:
    """``user`` owns what it submits; ``admin`` sees and changes everything. With auth off
    the principal is an admin with no user; nobody signed in is neither."""

    user: str | None
    admin: bool
    key_name: str | None = None
    csrf: str | None = None  # set when signed in through the browser's session cookie

    @property
    def signed_in(self) -> bool:
        return self.admin or self.user is not None


AUTH_OFF = Principal(user=None, admin=True)
ANONYMOUS = Principal(user=None, admin=False)


@dataclass(frozen=True)
class Credential:
    """What a request presents, before any read: nothing, an API key (``key``, with its
    hash) or a browser session (its cookie's hash, and the CSRF token derived from it).
    ``off``: auth is off, everyone is an admin."""

    off: bool = False
    key: str | None = field(default=None, repr=False)  # never in a log line
    key_hash: str | None = None
    session_hash: str | None = None
    csrf: str | None = field(default=None, repr=False)

    @property
    def needs_read(self) -> bool:
        return self.key_hash is not None or self.session_hash is not None


def credential(settings: Settings, authorization: str | None, cookie: str | None) -> Credential:
    """The request's credential. Raises Unauthorized for a malformed Authorization header."""
    if settings.auth == "off":
        return Credential(off=True)
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("the Authorization header must be 'Bearer <API key>'")
        return Credential(key=token, key_hash=token_hash(token))
    if cookie:
        return Credential(session_hash=token_hash(cookie), csrf=csrf_token(cookie))
    return Credential()


@dataclass(frozen=True)
class KeyUse:
    """A key just used, to record with :func:`record_use` once the lookup's connection
    is given back (at most once a minute: ``due``)."""

    key_id: int
    name: str
    last_used: datetime | None

    @property
    def due(self) -> bool:
        return self.last_used is None or store.utcnow() - self.last_used >= TOUCH_EVERY


def principal_of(
    credential: Credential, key: store.KeyRecord | None
) -> tuple[Principal, KeyUse | None]:
    """The caller presenting ``credential``, whose key (read for it) is ``key``, and the
    key use to record. Raises Unauthorized for a wrong or revoked key."""
    if credential.off:
        return AUTH_OFF, None
    if credential.key is not None:
        if key is None or not same_hash(key.token_hash, credential.key):
            raise Unauthorized("invalid or revoked API key")
    elif key is None:  # nobody; or an expired or signed-out session, which is nobody
        return ANONYMOUS, None
    principal = Principal(user=key.user, admin=key.admin, key_name=key.name, csrf=credential.csrf)
    return principal, KeyUse(key.id, key.name, key.last_used_at)


def lookup(
    engine: Engine, settings: Settings, authorization: str | None, cookie: str | None
) -> tuple[Principal, KeyUse | None]:
    """The caller with this ``Authorization`` header or session ``cookie``, and the key
    use to record. Raises Unauthorized for a wrong or revoked key."""
    presented = credential(settings, authorization, cookie)
    key = None
    if presented.needs_read:
        key = store.read_caller_key(
            engine, key_hash=presented.key_hash, session_hash=presented.session_hash
        )
    return principal_of(presented, key)


def record_use(state: Any, use: KeyUse | None) -> None:
    """Record that the key was used, when due (a write; never fails the request)."""
    if use is None or not use.due:
        return
    try:
        with store.session_scope(state.session_factory) as session:
            store.touch_key(
                session=session, key_id=use.key_id, older_than=store.utcnow() - TOUCH_EVERY
            )
    except Exception:
        log.warning("could not record the use of key %s", use.name, exc_info=True)


def resolve(request: Request, settings: SettingsDep) -> Principal:
    """The caller, looked up on a connection of its own, given back at once: the
    request's sessions take their connections later, so a request never holds two pooled
    connections at once (on PostgreSQL, 40 request threads each holding one and waiting
    for a second would starve the pool)."""
    if settings.auth == "off":
        return AUTH_OFF
    state = request.app.state
    authorization = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    principal, use = lookup(state.access_engine, settings, authorization, cookie)
    record_use(state, use)
    return principal


async def current_principal(
    request: Request, principal: Annotated[Principal, Depends(resolve)]
) -> Principal:
    """The caller; a state change made with the browser's cookie must carry its CSRF token
    (a form field or the ``X-CSRF-Token`` header)."""
    return await admitted(request, principal)


async def admitted(request: Request, principal: Principal) -> Principal:
    """``principal``, the request's caller, once its CSRF token is checked (see
    ``current_principal``)."""
    request.state.principal = principal
    if principal.csrf is not None and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and "form" in request.headers.get("content-type", ""):
            value = (await request.form()).get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
        if sent is None or not same_csrf(principal.csrf, sent):
            raise Forbidden("missing or wrong CSRF token: reload the page and try again")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def signed_in(principal: PrincipalDep) -> Principal:
    """The caller, who must hold a key (any user's)."""
    if not principal.signed_in:
        raise Unauthorized(NO_KEY)
    return principal


SignedInDep = Annotated[Principal, Depends(signed_in)]

__all__ = [
    "ANONYMOUS",
    "AUTH_OFF",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "Principal",
    "PrincipalDep",
    "SignedInDep",
    "admitted",
    "current_principal",
    "Credential",
    "KeyUse",
    "credential",
    "lookup",
    "principal_of",
    "record_use",
    "resolve",
    "signed_in",
]
