"""API keys and browser sessions: rows keyed by a token's hash (the token itself is never
stored). All functions take the session keyword-only and never commit, except
:func:`read_caller_key`, the read every request makes on a connection of its own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from search.store._engine import utcnow
from search.store._owner_reads import first_row
from search.store._tables import ApiKeyRow, WebSessionRow


@dataclass(frozen=True)
class KeyRecord:
    """An API key's row, as far as a request needs it."""

    id: int
    name: str
    user: str
    admin: bool
    token_hash: str
    last_used_at: datetime | None


# Built once, in Core: every request reads its caller's key, and a statement built per
# call costs more CPU than the query itself.
_KEY_TABLE, _WEB_TABLE = cast(Table, ApiKeyRow.__table__), cast(Table, WebSessionRow.__table__)
_KEYS, _WEB = _KEY_TABLE.c, _WEB_TABLE.c
_KEY_COLUMNS = (_KEYS.id, _KEYS.name, _KEYS.user, _KEYS.admin, _KEYS.token_hash, _KEYS.last_used_at)
_KEY_BY_HASH = select(*_KEY_COLUMNS).where(_KEYS.token_hash == bindparam("hash"))
_KEY_BY_SESSION = (
    select(*_KEY_COLUMNS)
    .join_from(_KEY_TABLE, _WEB_TABLE, _WEB.key_id == _KEYS.id)
    .where(_WEB.token_hash == bindparam("hash"), _WEB.expires_at > bindparam("now"))
)


def read_caller_key(
    engine: Engine, *, key_hash: str | None = None, session_hash: str | None = None
) -> KeyRecord | None:
    """The key with ``key_hash``, or the one a live browser session with ``session_hash``
    signed in with, read on a connection of ``engine`` given back at once (so a request
    never holds two pooled connections; ``first_row``)."""
    if session_hash is not None:
        row = first_row(engine, _KEY_BY_SESSION, {"hash": session_hash, "now": utcnow()})
    else:
        row = first_row(engine, _KEY_BY_HASH, {"hash": key_hash})
    return KeyRecord(*row) if row is not None else None


def insert_key(
    *, session: Session, name: str, user: str, token_hash: str, admin: bool
) -> ApiKeyRow:
    row = ApiKeyRow(name=name, user=user, token_hash=token_hash, admin=admin)
    session.add(row)
    session.flush()
    return row


def list_keys(*, session: Session) -> list[ApiKeyRow]:
    return list(session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.name)))


def get_key_by_name(*, session: Session, name: str) -> ApiKeyRow | None:
    return session.scalars(select(ApiKeyRow).where(ApiKeyRow.name == name)).first()


def get_key_by_hash(*, session: Session, token_hash: str) -> ApiKeyRow | None:
    return session.scalars(select(ApiKeyRow).where(ApiKeyRow.token_hash == token_hash)).first()


def delete_key(*, session: Session, name: str) -> bool:
    """Revoke: the key and every browser session signed in with it; False if unknown."""
    row = get_key_by_name(session=session, name=name)
    if row is None:
        return False
    session.execute(delete(WebSessionRow).where(WebSessionRow.key_id == row.id))
    session.delete(row)
    session.flush()
    return True


def touch_key(*, session: Session, key_id: int, older_than: datetime) -> None:
    """Record a use of the key, unless one was recorded after ``older_than`` (so a busy
    key costs a write a minute, not one per request)."""
    session.execute(
        update(ApiKeyRow)
        .where(
            ApiKeyRow.id == key_id,
            (ApiKeyRow.last_used_at.is_(None)) | (ApiKeyRow.last_used_at < older_than),
        )
        .values(last_used_at=utcnow())
    )


def insert_web_session(
    *, session: Session, key_id: int, token_hash: str, lifetime: timedelta
) -> WebSessionRow:
    row = WebSessionRow(token_hash=token_hash, key_id=key_id, expires_at=utcnow() + lifetime)
    session.add(row)
    session.flush()
    return row


def get_web_session_key(*, session: Session, token_hash: str) -> ApiKeyRow | None:
    """The key a live (unexpired) browser session was signed in with."""
    stmt = (
        select(ApiKeyRow)
        .join(WebSessionRow, WebSessionRow.key_id == ApiKeyRow.id)
        .where(WebSessionRow.token_hash == token_hash, WebSessionRow.expires_at > utcnow())
    )
    return session.scalars(stmt).first()


def delete_web_session(*, session: Session, token_hash: str) -> None:
    session.execute(delete(WebSessionRow).where(WebSessionRow.token_hash == token_hash))
    session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= utcnow()))


__all__ = [
    "KeyRecord",
    "read_caller_key",
    "delete_key",
    "delete_web_session",
    "get_key_by_hash",
    "get_key_by_name",
    "get_web_session_key",
    "insert_key",
    "insert_web_session",
    "list_keys",
    "touch_key",
]
