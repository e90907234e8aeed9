"""Contacts: profile, tags, scores and consent, as runs and the API see them."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Executable, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from temporal_journeys.journeys.records import ContactSnapshot
from temporal_journeys.journeys.spec import Update
from temporal_journeys.store.models import AppliedOperation, Contact

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


def get(session: Session, contact_id: str, *, for_update: bool = False) -> Contact | None:
    return session.get(Contact, contact_id, with_for_update=True if for_update else None)


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


_BY_IDS = select(Contact.__table__).where(
    Contact.__table__.c.id.in_(bindparam("contact_ids", expanding=True))
)


def load_snapshots(
    connection: Connection, contact_ids: Sequence[str]
) -> dict[str, ContactSnapshot]:
    """``load_snapshot`` for a batch of contacts: one SELECT of them all; the missing ones
    inserted in one multi-row statement (giving way to concurrent creators) and read in one more."""
    ids = list(dict.fromkeys(contact_ids))
    if not ids:
        return {}
    rows = {row.id: row for row in connection.execute(_BY_IDS, {"contact_ids": ids})}
    missing = [i for i in ids if i not in rows]
    if missing:
        connection.execute(
            _insert_missing(connection.dialect.name),
            [
                {"id": i, "traits": {}, "tags": [], "scores": {}, "unsubscribed": []}
                for i in missing
            ],
        )
        rows.update((row.id, row) for row in connection.execute(_BY_IDS, {"contact_ids": missing}))
    return {i: snapshot(rows[i]) for i in ids}


@functools.cache
def _insert_missing(dialect_name: str) -> Executable:
    # RETURNING makes SQLAlchemy send the rows as one multi-row INSERT ("insertmanyvalues")
    # instead of the driver's statement per row.
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    table = Contact.__table__
    return dialect.insert(table).on_conflict_do_nothing().returning(table.c.id)


def upsert(
    session: Session, contact_id: str, traits: dict[str, Any], locked: Contact | None = None
) -> Contact:
    """Merge Segment-style traits; ``email``, ``phone`` and ``timezone`` are profile columns.
    ``locked``: the contact as ``lock_all`` gave it, already locked in this transaction."""
    contact = locked if locked is not None else lock_or_create(session, contact_id)
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


def lock_or_create(session: Session, contact_id: str) -> Contact:
    """The contact, locked for this transaction (created if it is new), so concurrent writers
    for one contact queue up behind each other."""
    locked = select(Contact).where(Contact.id == contact_id).with_for_update()
    # Fresh from the row, not from this session's identity map: the lock is only worth
    # something if what we modify is what the lock protects.
    locked = locked.execution_options(populate_existing=True)
    contact = session.scalars(locked).one_or_none()
    if contact is not None:
        return contact
    # Our insert waits for a concurrent creator's transaction and then does nothing; either
    # way the row exists for the locking read.
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(
        dialect.insert(Contact.__table__)
        .values(id=contact_id, traits={}, tags=[], scores={}, unsubscribed=[])
        .on_conflict_do_nothing()
    )
    return session.scalars(locked).one()


def lock_all(
    session: Session, contact_ids: set[str], *, created: bool = False
) -> dict[str, Contact]:
    """Several contacts locked for this transaction (created if new) in two statements instead
    of two per contact: the missing rows inserted (giving way to concurrent creators), then all
    of them locked in id order, as ``lock_or_create`` one by one in that order would. Two
    ingests naming the same contacts queue instead of deadlocking. ``created``: this
    transaction already made sure every row exists (``segments.hold_contacts``), so only the
    second statement runs."""
    ids = sorted(contact_ids)
    if not ids:
        return {}
    if not created:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(
            dialect.insert(Contact.__table__).on_conflict_do_nothing(),
            [{"id": i, "traits": {}, "tags": [], "scores": {}, "unsubscribed": []} for i in ids],
        )
    locked = (
        select(Contact)
        .where(Contact.id.in_(ids))
        .order_by(Contact.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {contact.id: contact for contact in session.scalars(locked)}


def remove(session: Session, contact_id: str) -> int:
    return session.execute(delete(Contact).where(Contact.id == contact_id)).rowcount


def apply_update(session: Session, contact_id: str, update: Update, key: str) -> Contact:
    """Apply an ``update`` step once: a retried activity finds its key and changes nothing."""
    contact = lock_or_create(session, contact_id)
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
