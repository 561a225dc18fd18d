"""Authentication (API keys, browser sign-in, CSRF) and ownership checks."""

from __future__ import annotations

from service.auth._access import (
    OwnedStudyDep,
    ReadableStudyDep,
    can_change,
    can_read,
    changeable,
    listed_studies,
    owned_study,
    owner_filter,
    readable,
    readable_study,
)
from service.auth._principal import (
    ANONYMOUS,
    AUTH_OFF,
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    Principal,
    PrincipalDep,
    SignedInDep,
    current_principal,
    lookup,
    record_use,
    signed_in,
)
from service.auth._tokens import (
    KEY_PREFIX,
    check_name,
    csrf_token,
    new_key_token,
    new_session_token,
    token_hash,
)

__all__ = [
    "ANONYMOUS",
    "AUTH_OFF",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "KEY_PREFIX",
    "SESSION_COOKIE",
    "OwnedStudyDep",
    "Principal",
    "PrincipalDep",
    "ReadableStudyDep",
    "SignedInDep",
    "can_change",
    "can_read",
    "changeable",
    "check_name",
    "csrf_token",
    "current_principal",
    "lookup",
    "listed_studies",
    "new_key_token",
    "new_session_token",
    "owned_study",
    "owner_filter",
    "readable",
    "readable_study",
    "record_use",
    "signed_in",
    "token_hash",
]
