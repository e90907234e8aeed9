"""The send log: what each message said (subject, text, HTML), the headers sent, its status."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query

from temporal_journeys.api.deps import AdminKey, SessionDep
from temporal_journeys.api.schemas import MessageOut
from temporal_journeys.api.services import messages
from temporal_journeys.store.messages import STATUS_ORDER

router = APIRouter(prefix="/v1/messages", tags=["messages"], dependencies=[AdminKey])


@router.get("")
def list_messages(
    session: SessionDep,
    contact: str | None = None,
    journey: str | None = None,
    status: str | None = None,
    test: bool | None = Query(
        default=None, description="true: only test sends; false: only the journeys' messages."
    ),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[MessageOut]:
    """Messages, newest first, filtered by contact, journey, status (pending, sent,
    delivered, opened, clicked, bounced, ...: the furthest state each message reached) or
    test mark; each with its rendered subject, text, HTML and the headers sent."""
    if status is not None and status not in STATUS_ORDER:
        raise HTTPException(422, f"unknown status {status!r}; one of: {', '.join(STATUS_ORDER)}")
    return messages.listing(
        session, contact=contact, journey=journey, status=status, test=test, limit=limit
    )


@router.get("/{message_id}")
def get_message(message_id: str, session: SessionDep) -> MessageOut:
    """One message: its content, headers, status and status history."""
    return messages.get(session, message_id)
