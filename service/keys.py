"""``hpsearch keys create|list|revoke``: API keys, made on the server with the database URL
(whoever holds it is already trusted: workers authenticate the same way). A new key's
token is printed once; the database keeps only its SHA-256."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from search import store
from service.auth import check_name, new_key_token, token_hash


class KeyCommandError(ValueError):
    """A key command that cannot be done (a name taken or unknown, a bad name)."""


@dataclass(frozen=True)
class KeyInfo:
    name: str
    user: str
    admin: bool
    created_at: datetime
    last_used_at: datetime | None


def _factory(url: str) -> sessionmaker[Session]:
    import migrations

    migrations.upgrade(url)  # keys can be made before the first serve
    return store.make_session_factory(url)


def create_key(url: str, name: str, *, user: str | None = None, admin: bool = False) -> str:
    """Store a new key for ``user`` (default: ``name``); return its token (shown once)."""
    try:
        check_name("key name", name)
        check_name("user", user or name)
    except ValueError as exc:
        raise KeyCommandError(str(exc)) from None
    token = new_key_token()
    try:
        with store.session_scope(_factory(url)) as session:
            store.insert_key(
                session=session,
                name=name,
                user=user or name,
                token_hash=token_hash(token),
                admin=admin,
            )
    except IntegrityError:
        raise KeyCommandError(f"a key named {name!r} already exists") from None
    return token


def list_keys(url: str) -> list[KeyInfo]:
    with store.session_scope(_factory(url)) as session:
        return [
            KeyInfo(k.name, k.user, k.admin, k.created_at, k.last_used_at)
            for k in store.list_keys(session=session)
        ]


def revoke_key(url: str, name: str) -> None:
    """Delete the key and its browser sessions: it is refused from the next request on."""
    with store.session_scope(_factory(url)) as session:
        if not store.delete_key(session=session, name=name):
            raise KeyCommandError(f"no key named {name!r}")


__all__ = ["KeyCommandError", "KeyInfo", "create_key", "list_keys", "revoke_key"]
