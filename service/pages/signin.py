"""``/signin`` and ``/signout``: a browser signs in with an API key and gets a session
cookie (HttpOnly, SameSite=Lax, Secure over TLS); the key itself never goes into a cookie.
A session lasts ``HPS_SESSION_HOURS`` and ends with sign-out or when its key is revoked."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from search import store
from service.auth import (
    ANONYMOUS,
    SESSION_COOKIE,
    PrincipalDep,
    new_session_token,
    token_hash,
)
from service.auth._tokens import same_hash
from service.deps import SessionDep, SettingsDep
from service.pages._render import render

router = APIRouter()


def safe_next(target: str | None) -> str:
    """A path on this site to go to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


@router.get("/signin", response_class=HTMLResponse)
def signin_page(
    request: Request, settings: SettingsDep, principal: PrincipalDep, next: str | None = None
) -> HTMLResponse:
    """The sign-in form; a visitor who is not signed in sees no links to the pages that
    need a key (``principal`` puts the caller in the page's navigation)."""
    return render(
        request, "signin.html", next=safe_next(next), auth_on=settings.auth == "on", error=None
    )


@router.post("/signin", response_class=HTMLResponse)
def signin(
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    key: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    target = safe_next(next)
    if settings.auth == "off":
        return RedirectResponse(target, status_code=303)
    row = store.get_key_by_hash(session=session, token_hash=token_hash(key.strip()))
    if row is None or not same_hash(row.token_hash, key.strip()):
        return render(
            request,
            "signin.html",
            status_code=401,
            principal=ANONYMOUS,
            next=target,
            auth_on=True,
            error="That key is not valid (or was revoked).",
        )
    token = new_session_token()
    lifetime = timedelta(hours=settings.session_hours)
    store.insert_web_session(
        session=session, key_id=row.id, token_hash=token_hash(token), lifetime=lifetime
    )
    session.commit()
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/signout")
def signout(request: Request, principal: PrincipalDep, session: SessionDep) -> Response:
    """End the browser's session (the CSRF check is in ``principal``)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        store.delete_web_session(session=session, token_hash=token_hash(cookie))
        session.commit()
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


__all__ = ["router", "safe_next"]
