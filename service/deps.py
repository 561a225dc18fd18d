"""FastAPI dependencies: settings and a per-request session, injected (never reached for).

Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in
its thread pool, a thread hop per dependency per request. A session is made in the event
loop (that does no I/O: it takes a connection at its first statement) and closed in the
thread pool (that gives the connection back): one hop, where a ``def`` generator takes two."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


async def get_read_session_factory(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.read_session_factory
    return factory


@asynccontextmanager
async def _session(factory: sessionmaker[Session]) -> AsyncIterator[Session]:
    session = factory()
    try:
        yield session
    finally:
        if session.in_transaction():  # it holds a connection: giving it back is I/O
            await run_in_threadpool(session.close)
        else:
            session.close()


async def get_db(request: Request) -> AsyncIterator[Session]:
    async with _session(request.app.state.session_factory) as session:
        yield session


async def get_read_db(request: Request) -> AsyncIterator[Session]:
    """A session for reads only: on SQLite it takes no write lock, so reads never queue
    behind (or hold up) the workers' writes."""
    async with _session(request.app.state.read_session_factory) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
ReadSessionDep = Annotated[Session, Depends(get_read_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
ReadSessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_read_session_factory)]

StudyId = Annotated[int, Path(ge=0, le=2**31 - 1, description="study id")]
TrialNumber = Annotated[int, Path(ge=0, le=2**31 - 1, description="trial number in the study")]
