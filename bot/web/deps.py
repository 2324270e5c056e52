"""Typed FastAPI dependencies: the settings, a database session and the current time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.settings import Settings
from schedules.policy import Policy, load_policy
from surveys.db import session_scope


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_session(request: Request) -> Iterator[Session]:
    with session_scope(get_engine(request)) as session:
        yield session


def get_now(request: Request) -> datetime:
    """The current time; tests replace ``app.state.clock`` to move it."""
    clock = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else datetime.now(UTC)


def get_policy(request: Request) -> Policy:
    """The partnership's policy, checked once per app (the booking pages keep it there too)."""
    policy: Policy | None = getattr(request.app.state, "policy", None)
    if policy is None:
        policy = load_policy(get_settings(request).policy)
        request.app.state.policy = policy
    return policy


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
NowDep = Annotated[datetime, Depends(get_now)]
PolicyDep = Annotated[Policy, Depends(get_policy)]
EngineDep = Annotated[Engine, Depends(get_engine)]
