"""Contacts: profile, tags, scores and consent, as runs and the API see them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from journeys.records import ContactSnapshot
from journeys.spec import Update
from store.models import AppliedOperation, Contact

PROFILE_FIELDS = ("email", "phone", "timezone")


def snapshot(contact: Any) -> ContactSnapshot:
    """From a ``Contact`` or a row of its table."""
    return ContactSnapshot(
        id=contact.id,
        email=contact.email,
        phone=contact.phone,
        timezone=contact.timezone or "UTC",
        traits=dict(contact.traits or {}),
        tags=list(contact.tags or []),
        scores={k: float(v) for k, v in (contact.scores or {}).items()},
        unsubscribed=list(contact.unsubscribed or []),
    )


def get_or_create(session: Session, contact_id: str) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is not None:
        return contact
    try:
        with session.begin_nested():
            contact = Contact(id=contact_id, traits={}, tags=[], scores={}, unsubscribed=[])
            session.add(contact)
    except IntegrityError:
        # Another transaction created it between our read and our insert.
        contact = session.get(Contact, contact_id)
        assert contact is not None
    return contact


# Built once: starters and activities load a contact for every run.
_BY_ID = select(Contact.__table__).where(Contact.__table__.c.id == bindparam("contact_id"))


def load_snapshot(connection: Connection, contact_id: str) -> ContactSnapshot:
    """``get_or_create`` and ``snapshot`` on a Core connection: one SELECT when the contact
    exists; else an insert that gives way to a concurrent one, and the SELECT again."""
    row = connection.execute(_BY_ID, {"contact_id": contact_id}).first()
    if row is None:
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        connection.execute(
            dialect.insert(Contact.__table__)
            .values(id=contact_id, traits={}, tags=[], scores={}, unsubscribed=[])
            .on_conflict_do_nothing()
        )
        row = connection.execute(_BY_ID, {"contact_id": contact_id}).one()
    return snapshot(row)


def upsert(session: Session, contact_id: str, traits: dict[str, Any]) -> Contact:
    """Merge Segment-style traits; ``email``, ``phone`` and ``timezone`` are profile columns."""
    contact = get_or_create(session, contact_id)
    rest = dict(contact.traits or {})
    for name, value in traits.items():
        if name in PROFILE_FIELDS:
            setattr(contact, name, value if value is not None or name != "timezone" else "UTC")
        elif value is None:
            rest.pop(name, None)
        else:
            rest[name] = value
    contact.traits = rest
    return contact


def claim_operation(session: Session, key: str) -> bool:
    """Record an idempotency key in this transaction; False if it was applied before."""
    if session.scalar(select(AppliedOperation.key).where(AppliedOperation.key == key)):
        return False
    session.add(AppliedOperation(key=key))
    session.flush()
    return True


def apply_update(session: Session, contact_id: str, update: Update, key: str) -> Contact:
    """Apply an ``update`` step once: a retried activity finds its key and changes nothing."""
    contact = session.scalars(
        select(Contact).where(Contact.id == contact_id).with_for_update()
    ).one_or_none() or get_or_create(session, contact_id)
    if not claim_operation(session, key):
        return contact
    traits = dict(contact.traits or {})
    for name, value in update.attributes.items():
        if name in PROFILE_FIELDS:
            setattr(contact, name, value)
        elif value is None:
            traits.pop(name, None)
        else:
            traits[name] = value
    contact.traits = traits
    tags = [t for t in (contact.tags or []) if t not in update.remove_tags]
    contact.tags = tags + [t for t in update.add_tags if t not in tags]
    scores = dict(contact.scores or {})
    for name, points in update.score.items():
        scores[name] = scores.get(name, 0) + points
    contact.scores = scores
    return contact
