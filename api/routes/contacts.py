"""Contacts: profile, where they are in journeys, erasure."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import AdminKey, DbDep, SessionDep
from api.schemas import ContactOut, EnrollmentOut
from api.services import contacts

router = APIRouter(prefix="/v1/contacts", tags=["contacts"], dependencies=[AdminKey])


@router.get("/{user_id}")
def get_contact(user_id: str, session: SessionDep) -> ContactOut:
    """A contact's profile, tags, scores and opt-outs."""
    return contacts.get(session, user_id)


@router.get("/{user_id}/journeys")
async def contact_journeys(user_id: str, request: Request, db: DbDep) -> list[EnrollmentOut]:
    """Every journey the contact entered: status, step, and what a running run waits for."""
    return await contacts.journeys_of(db, request.app.state.temporal.client, user_id)


@router.delete("/{user_id}")
async def erase_contact(user_id: str, request: Request, db: DbDep) -> dict[str, int]:
    """Erase a contact: end their runs and remove their events, messages and profile."""
    ended = await contacts.erase(db, request.app.state.temporal.client, user_id)
    return {"runs_ended": ended}
