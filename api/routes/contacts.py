"""Contacts: profile, where they are in journeys, erasure."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from temporal_journeys.api.deps import (
    AdminKey,
    DbDep,
    OptionalClientDep,
    OptionalCodecDep,
    SessionDep,
)
from temporal_journeys.api.schemas import ContactOut, EnrollmentOut, ErasureOut
from temporal_journeys.api.services import contacts

router = APIRouter(prefix="/v1/contacts", tags=["contacts"], dependencies=[AdminKey])

# Contact ids are the app's own and may hold `/` ("u1/c1"), so each route takes the rest of the
# path. Routes match in order: the `/journeys` suffix first, so an id ending in "/journeys"
# means that list, as docs/operating.md says.


@router.get("/{user_id:path}/journeys")
async def contact_journeys(
    user_id: str, db: DbDep, client: OptionalClientDep
) -> list[EnrollmentOut]:
    """Every journey the contact entered: status, step, and what a running run waits for."""
    return await contacts.journeys_of(db, client, user_id)


@router.patch("/{user_id:path}/topics")
def set_contact_topics(
    user_id: str, body: Annotated[dict[str, Any], Body()], session: SessionDep
) -> ContactOut:
    """Set some of a contact's topic subscriptions: ``{"newsletter": false}``; the others
    stay as they are."""
    return contacts.set_topics(session, user_id, body)


@router.get("/{user_id:path}")
def get_contact(user_id: str, session: SessionDep) -> ContactOut:
    """A contact's profile, tags, scores, opt-outs and topic subscriptions."""
    return contacts.get(session, user_id)


@router.delete("/{user_id:path}")
async def erase_contact(
    user_id: str, db: DbDep, client: OptionalClientDep, codec: OptionalCodecDep
) -> ErasureOut:
    """Erase a contact: end their runs, destroy their data key (with encryption on: what
    Temporal's histories hold of them becomes unreadable) and remove their events, messages and
    profile."""
    return await contacts.erase(db, client, codec, user_id)
