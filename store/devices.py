"""Push devices: the FCM registration tokens of each contact (several per contact, with their
platform), and per push message which tokens FCM was already called for.

A token belongs to one app install, so it names one contact: registering a token another
contact held moves it (the app's user signed out and another signed in on that phone)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from temporal_journeys.store.models import Device, DeviceSend, Message, utcnow

PLATFORMS = ("ios", "android", "web", "webpush")
"""``web`` is an FCM token from the Firebase JS SDK; ``webpush`` a browser's own push
subscription (RFC 8030), its token the endpoint and its keys in ``p256dh`` and ``auth``."""
MAX_PER_CONTACT = 20
"""Devices a push message goes to at most: the most recently registered ones."""


@dataclass(frozen=True)
class DeviceRow:
    token: str
    platform: str
    updated_at: datetime
    p256dh: str | None = None
    auth: str | None = None


def register(
    session: Session,
    contact_id: str,
    token: str,
    platform: str,
    keys: tuple[str, str] | None = None,
) -> bool:
    """Add or move a token to ``contact_id``; True when something changed. ``keys`` are a web
    push subscription's (p256dh, auth)."""
    p256dh, auth = keys or (None, None)
    device = session.get(Device, token, with_for_update=True)
    if device is None:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        # Two registrations of one new token at once: the second finds the first's row.
        inserted = session.execute(
            dialect.insert(Device)
            .values(
                token=token,
                contact_id=contact_id,
                platform=platform,
                p256dh=p256dh,
                auth=auth,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
            .on_conflict_do_nothing()
            .returning(Device.token)
        ).first()
        if inserted is not None:
            return True
        device = session.get(Device, token, with_for_update=True, populate_existing=True)
        assert device is not None
    # Re-registered: the app is still installed, so it counts among the most recent devices.
    device.updated_at = utcnow()
    same = (device.contact_id, device.platform, device.p256dh, device.auth)
    if same == (contact_id, platform, p256dh, auth):
        return False
    # A browser may renew a subscription's keys for the same endpoint.
    device.contact_id, device.platform = contact_id, platform
    device.p256dh, device.auth = p256dh, auth
    return True


def get(session: Session, token: str) -> DeviceRow | None:
    device = session.get(Device, token)
    if device is None:
        return None
    return DeviceRow(device.token, device.platform, device.updated_at, device.p256dh, device.auth)


def of_contact(session: Session, contact_id: str) -> list[DeviceRow]:
    """The contact's devices, most recently registered first, at most ``MAX_PER_CONTACT``."""
    query = (
        select(Device.token, Device.platform, Device.updated_at, Device.p256dh, Device.auth)
        .where(Device.contact_id == contact_id)
        .order_by(Device.updated_at.desc(), Device.token)
        .limit(MAX_PER_CONTACT)
    )
    return [DeviceRow(*row) for row in session.execute(query)]


def unregister(session: Session, contact_id: str, token: str) -> bool:
    """Remove one of the contact's tokens (the app signed out); False if it was not theirs."""
    removed = session.execute(
        delete(Device).where(Device.token == token, Device.contact_id == contact_id)
    )
    return bool(removed.rowcount)


def remove_token(session: Session, token: str) -> bool:
    """FCM said the token is dead (UNREGISTERED, or not a valid token): never call it again."""
    return bool(session.execute(delete(Device).where(Device.token == token)).rowcount)


def remove_for_contact(session: Session, contact_id: str) -> int:
    """Erasure: the contact's devices, and the per-token records of their messages."""
    messages = select(Message.id).where(Message.contact_id == contact_id).scalar_subquery()
    session.execute(delete(DeviceSend).where(DeviceSend.message_id.in_(messages)))
    return session.execute(delete(Device).where(Device.contact_id == contact_id)).rowcount


# ---------------------------------------------------------------- per-message ledger


def called(session: Session, message_id: str) -> dict[str, DeviceSend]:
    """Tokens FCM was already called for with this message, by token."""
    query = select(DeviceSend).where(DeviceSend.message_id == message_id)
    return {row.token: row for row in session.scalars(query)}


def record(
    session: Session,
    message_id: str,
    token: str,
    outcome: str,
    provider_message_id: str | None = None,
) -> None:
    """What one call for one token ended in: ``sent``, ``unknown`` or ``removed``. Kept once:
    a later record for the same token changes nothing."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(
        dialect.insert(DeviceSend)
        .values(
            message_id=message_id,
            token=token,
            outcome=outcome,
            provider_message_id=provider_message_id,
            at=utcnow(),
        )
        .on_conflict_do_nothing()
    )
