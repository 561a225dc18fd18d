"""Who may see and change what: the one place ownership is decided.

A user reads what they own and what is public, and changes only what they own; an admin
reads and changes everything. Anything else answers 404, exactly like an id that does not
exist, so ids cannot be probed; a caller with no key gets 401 (a page: the sign-in page).

A route states its access with one dependency: ``ReadableStudyDep`` (reads, public studies
included), ``OwnedStudyDep`` (changes; ``ChangeableStudyDep`` when the route writes in
transactions of its own), ``SignedInDep`` (needs any key) or nothing (open).
A new owned resource (datasets) does the same with ``readable``/``changeable`` and its own
two dependencies, and a row in ``tests/service/test_access.py``.
"""

from __future__ import annotations

from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from search import store
from service.auth._principal import NO_KEY, Principal, PrincipalDep, admitted, resolve
from service.deps import ReadSessionDep, SessionDep, SettingsDep, StudyId
from service.errors import HpsError, NotFound, Unauthorized


class Owned(Protocol):
    @property
    def owner(self) -> str | None: ...

    @property
    def public(self) -> bool: ...


OwnedT = TypeVar("OwnedT", bound=Owned)


def _refuse(principal: Principal, what: str) -> HpsError:
    if not principal.signed_in:
        return Unauthorized(NO_KEY)
    return NotFound(f"{what} not found")


def can_read(principal: Principal, row: Owned) -> bool:
    return (
        principal.admin
        or row.public
        or (principal.user is not None and row.owner == principal.user)
    )


def can_change(principal: Principal, row: Owned) -> bool:
    return principal.admin or (principal.user is not None and row.owner == principal.user)


def readable(principal: Principal, row: OwnedT | None, what: str) -> OwnedT:
    """``row`` if the caller may read it; otherwise 404 (401 for no key)."""
    if row is None or not can_read(principal, row):
        raise _refuse(principal, what)
    return row


def changeable(principal: Principal, row: OwnedT | None, what: str) -> OwnedT:
    """``row`` if the caller may change it; otherwise 404 (401 for no key)."""
    if row is None or not can_change(principal, row):
        raise _refuse(principal, what)
    return row


def owner_filter(principal: Principal) -> str | None | object:
    """The ``owner`` argument of list queries: every row for an admin, else the caller's."""
    return store.ALL_OWNERS if principal.admin else principal.user


def listed_studies(principal: Principal) -> tuple[str | None | object, bool]:
    """The ``owner`` and ``public`` arguments of ``store.list_studies``: what the caller
    may read, i.e. every study for an admin, else their own and the public ones (a caller
    with no key: the public ones only)."""
    if principal.admin:
        return store.ALL_OWNERS, False
    return (principal.user if principal.user is not None else store.NO_OWNER), True


def readable_study(
    study_id: StudyId, session: ReadSessionDep, principal: PrincipalDep
) -> store.StudyRow:
    return readable(
        principal, store.get_study(session=session, study_id=study_id), f"study {study_id}"
    )


def owned_study(study_id: StudyId, session: SessionDep, principal: PrincipalDep) -> store.StudyRow:
    return changeable(
        principal, store.get_study(session=session, study_id=study_id), f"study {study_id}"
    )


async def changeable_study(
    request: Request, study_id: StudyId, settings: SettingsDep
) -> store.StudyOwner:
    """``owned_study`` for routes whose changes are transactions of their own (the REST
    trial API's): only the study's owner and visibility, read on a connection of its own
    given back at once (``store.read_study_owner``), so a request never holds two pooled
    connections (with the request's session held open, as many requests as the pool has
    connections would wait on each other for good); its spec and counts are not read.
    The caller (``PrincipalDep``'s lookup) and the owner are read in one trip to the
    thread pool, not one each: a hop costs about what one of these reads does."""
    engine = request.app.state.access_engine

    def read() -> tuple[Principal, store.StudyOwner | None]:
        return resolve(request, settings), store.read_study_owner(engine, study_id=study_id)

    principal, row = await run_in_threadpool(read)
    return changeable(await admitted(request, principal), row, f"study {study_id}")


ReadableStudyDep = Annotated[store.StudyRow, Depends(readable_study)]
OwnedStudyDep = Annotated[store.StudyRow, Depends(owned_study)]
ChangeableStudyDep = Annotated[store.StudyOwner, Depends(changeable_study)]


__all__ = [
    "ChangeableStudyDep",
    "OwnedStudyDep",
    "ReadableStudyDep",
    "can_change",
    "can_read",
    "changeable",
    "changeable_study",
    "listed_studies",
    "owned_study",
    "owner_filter",
    "readable",
    "readable_study",
]
