"""Dependency aliases reused in every route signature."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from dicomhub.context import IntakeContext, PublicContext


def get_context(request: Request) -> PublicContext | IntakeContext:
    context: PublicContext | IntakeContext = request.app.state.context
    return context


def get_public_context(request: Request) -> PublicContext:
    context = request.app.state.context
    assert isinstance(context, PublicContext)
    return context


def get_intake_context(request: Request) -> IntakeContext:
    context = request.app.state.context
    assert isinstance(context, IntakeContext)
    return context


def get_session(request: Request) -> Iterator[Session]:
    """One session per request on the app's own database."""
    context: PublicContext | IntakeContext = request.app.state.context
    with context.db.sessions() as session:
        yield session


ContextDep = Annotated[PublicContext | IntakeContext, Depends(get_context)]
PublicContextDep = Annotated[PublicContext, Depends(get_public_context)]
IntakeContextDep = Annotated[IntakeContext, Depends(get_intake_context)]
SessionDep = Annotated[Session, Depends(get_session)]
