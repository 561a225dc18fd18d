"""API key and browser-session tokens: made here, shown once, stored only as a hash.

Tokens are 256 random bits (``secrets.token_urlsafe(32)``), so a fast hash is enough: there
is no password to guess, and a slow hash (bcrypt, argon2) would only add its cost to every
request. A database dump therefore holds nothing that can be sent as a key. Lookups go by
the hash's unique index and the row found is compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

KEY_PREFIX = "hps_"  # so a leaked key is recognisable (secret scanners, logs)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


def new_key_token() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Hex SHA-256 of the token (64 characters)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same_hash(stored: str, token: str) -> bool:
    """Whether ``token`` hashes to ``stored``, compared in constant time."""
    return hmac.compare_digest(stored.encode(), token_hash(token).encode())


def csrf_token(session_token: str) -> str:
    """The CSRF token of a browser session: derived from the session's secret cookie, which
    a page on another site can neither read nor guess."""
    return hmac.new(session_token.encode(), b"hpsearch csrf", hashlib.sha256).hexdigest()


def same_csrf(expected: str, sent: str) -> bool:
    return hmac.compare_digest(expected.encode(), sent.encode("utf-8", "replace"))


def check_name(kind: str, name: str) -> str:
    """``name`` if it is 1-64 letters, digits, ``_ . -`` (not starting with a symbol)."""
    if not _NAME.match(name):
        raise ValueError(
            f"{kind} {name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


__all__ = [
    "KEY_PREFIX",
    "NAME_PATTERN",
    "check_name",
    "csrf_token",
    "new_key_token",
    "new_session_token",
    "same_csrf",
    "same_hash",
    "token_hash",
]
