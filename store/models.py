"""SQLAlchemy 2 models; the Alembic migrations under ``migrations/`` create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: Json}


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40), index=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    traits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[list[str]] = mapped_column(Json, default=list)
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    unsubscribed: Mapped[list[str]] = mapped_column(
        Json, default=list, doc="Channels the contact opted out of."
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_contact_name_time", "contact_id", "name", "timestamp"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    contact_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timestamp: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Template(Base):
    __tablename__ = "templates"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    provider_template_id: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    url: Mapped[str | None] = mapped_column(Text, doc="Webhook channel: where to POST (Liquid).")


class JourneyRow(Base):
    __tablename__ = "journeys"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    draft: Mapped[dict[str, Any] | None] = mapped_column(Json)
    latest_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class JourneyVersion(Base):
    __tablename__ = "journey_versions"

    journey_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column()
    published_at: Mapped[datetime] = mapped_column(default=utcnow)


class Enrollment(Base):
    """One entry of a contact into a journey: a workflow id plus the run that began it."""

    __tablename__ = "enrollments"
    __table_args__ = (
        Index("ix_enrollments_journey_status", "journey_key", "version", "status"),
        Index("ix_enrollments_contact", "contact_id", "journey_key"),
    )

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(400), index=True)
    journey_key: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[str] = mapped_column(String(200))
    correlation: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="running")
    current_step: Mapped[str | None] = mapped_column(String(100))
    variant: Mapped[str | None] = mapped_column(String(50))
    converted: Mapped[bool] = mapped_column(Boolean, default=False)
    exit_reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column()


class Message(Base):
    """The send log; a row exists before the provider is called, keyed by idempotency key."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_contact", "contact_id", "created_at"),
        Index("ix_messages_contact_channel_sent", "contact_id", "channel", "sent_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(400), unique=True)
    contact_id: Mapped[str] = mapped_column(String(200))
    journey_key: Mapped[str | None] = mapped_column(String(100))
    version: Mapped[int | None] = mapped_column(Integer)
    step_id: Mapped[str | None] = mapped_column(String(100))
    workflow_id: Mapped[str | None] = mapped_column(String(400))
    channel: Mapped[str] = mapped_column(String(20))
    template: Mapped[str] = mapped_column(String(100))
    provider: Mapped[str] = mapped_column(String(20))
    to_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    status_history: Mapped[list[Any]] = mapped_column(Json, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Last, as the migration that added it appends it.
    sent_at: Mapped[datetime | None] = mapped_column(
        doc="When the provider was called, on the workflow's clock; frequency caps count these."
    )


class StepEvent(Base):
    """Funnel counters: one row per step entered, completed, skipped, deferred, converted."""

    __tablename__ = "step_events"
    __table_args__ = (Index("ix_step_events_journey_step", "journey_key", "version", "step_id"),)

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    enrollment_id: Mapped[str] = mapped_column(String(100), index=True)
    journey_key: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    step_id: Mapped[str | None] = mapped_column(String(100))
    contact_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    variant: Mapped[str | None] = mapped_column(String(50))
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column()


class Suppression(Base):
    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryReceipt(Base):
    """A provider's delivery event (SendGrid sg_event_id, Twilio MessageSid + status), kept
    so a repeated webhook is applied once."""

    __tablename__ = "delivery_receipts"

    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    message_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(30))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class AppliedOperation(Base):
    """Idempotency keys of contact updates and journey entries already carried out."""

    __tablename__ = "applied_operations"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key, stored as a SHA-256 digest; the key itself is shown once, when created."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class OutboxEntry(Base):
    """An accepted event not yet routed to Temporal; deleted once it has been."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_contact_id", "contact_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    contact_id: Mapped[str] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
