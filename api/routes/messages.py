"""The send log."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import select

from api.deps import AdminKey, SessionDep
from api.schemas import MessageOut
from store.messages import STATUS_ORDER
from store.models import Message

router = APIRouter(prefix="/v1/messages", tags=["messages"], dependencies=[AdminKey])


@router.get("")
def list_messages(
    session: SessionDep,
    contact: str | None = None,
    journey: str | None = None,
    status: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[MessageOut]:
    """Messages, newest first, filtered by contact, journey or status (pending, sent,
    delivered, opened, clicked, bounced, ...: the furthest state each message reached)."""
    if status is not None and status not in STATUS_ORDER:
        raise HTTPException(422, f"unknown status {status!r}; one of: {', '.join(STATUS_ORDER)}")
    query = select(Message).order_by(Message.created_at.desc()).limit(limit)
    if contact is not None:
        query = query.where(Message.contact_id == contact)
    if journey is not None:
        query = query.where(Message.journey_key == journey)
    if status is not None:
        query = query.where(Message.status == status)
    return [MessageOut.model_validate(m, from_attributes=True) for m in session.scalars(query)]
