"""FastAPI dependencies: settings and a per-request session, injected (never reached for).

Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in
its thread pool, a thread hop per dependency per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session, sessionmaker

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


def get_db(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    with factory() as session:
        yield session


def get_read_db(request: Request) -> Iterator[Session]:
    """A session for reads only: on SQLite it takes no write lock, so reads never queue
    behind (or hold up) the workers' writes."""
    factory: sessionmaker[Session] = request.app.state.read_session_factory
    with factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
ReadSessionDep = Annotated[Session, Depends(get_read_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
ReadSessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_read_session_factory)]

StudyId = Annotated[int, Path(ge=0, le=2**31 - 1, description="study id")]
TrialNumber = Annotated[int, Path(ge=0, le=2**31 - 1, description="trial number in the study")]
