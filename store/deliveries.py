"""Delivery receipts (one row per provider event, so a repeated webhook is applied once) and
the lookups the delivery webhooks need."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from temporal_journeys.store.models import Contact, DeliveryReceipt, Message


def claim(session: Session, key: str, message_id: str | None, status: str) -> bool:
    """Record a provider event in the caller's transaction; False if it was seen before.

    On Postgres a concurrent claim of the same key waits for the first transaction and then
    finds the row, so two deliveries of one event never both apply it."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    inserted = session.execute(
        dialect.insert(DeliveryReceipt)
        .values(id=key, message_id=message_id, status=status)
        .on_conflict_do_nothing()
        .returning(DeliveryReceipt.id)
    ).first()
    return inserted is not None


def lock_messages(session: Session, ids: set[str]) -> dict[str, Message]:
    """The messages with these ids, locked for this transaction in id order (so two requests
    touching the same messages queue up instead of deadlocking)."""
    if not ids:
        return {}
    query = select(Message).where(Message.id.in_(sorted(ids))).order_by(Message.id)
    return {m.id: m for m in session.scalars(query.with_for_update())}


def lock_by_provider_id(session: Session, provider_message_id: str) -> Message | None:
    """Fallback for events that lost our id: the provider's own id, saved at send time."""
    query = (
        select(Message)
        .where(Message.provider_message_id == provider_message_id)
        .order_by(Message.id)
        .limit(1)
    )
    return session.scalars(query.with_for_update()).first()


def contacts_with_phone(session: Session, phone: str) -> list[Contact]:
    """Contacts at this number, locked: an SMS opt-out applies to every one of them."""
    query = select(Contact).where(Contact.phone == phone).order_by(Contact.id).limit(100)
    return list(session.scalars(query.with_for_update()))
