"""SQLAlchemy 2 models; the Alembic migrations under ``migrations/`` create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    Connection,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from temporal_journeys.store import partitions

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


# Migration 0014_date_entry_index: the month and day of the ``birthday`` trait, written as
# ``store/date_entry.py``'s candidate query writes it (the planner uses an expression index
# only for the same expression), so a yearly birthday fire reads a few days' contacts.
# ``TRIM(BOTH FROM x)`` is ``trim(x)``, as Postgres gives it back (autogenerate compares them).
BIRTHDAY_DAY = {
    "postgresql": "substr(TRIM(BOTH FROM traits ->> 'birthday'), 6, 5)",
    "sqlite": "substr(trim(json_extract(traits, '$.\"birthday\"')), 6, 5)",
}


class _PerDialect(ColumnElement[str]):
    """SQL text that differs by dialect: one index, one name, on both databases."""

    inherit_cache = False

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts


@compiles(_PerDialect)
def _per_dialect(element: _PerDialect, compiler: Any, **_: Any) -> str:
    return element.texts[compiler.dialect.name]


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (Index("ix_contacts_birthday_day", _PerDialect(BIRTHDAY_DAY)),)

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
    __table_args__ = (
        Index("ix_events_contact_name_time", "contact_id", "name", "timestamp"),
        # Migration 0014: a contact's events newest first (the operator page's timeline).
        Index("ix_events_contact_time", "contact_id", "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Unique through ``event_ids`` (migration 0015): on Postgres this table is partitioned by
    # month of ``received_at`` (``store/partitions.py``), and a unique index there would have
    # to hold ``received_at`` too.
    message_id: Mapped[str] = mapped_column(String(200))
    contact_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timestamp: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


@event.listens_for(Event.__table__, "after_create")
def _partitioned_on_postgres(target: Any, connection: Connection, **_: Any) -> None:
    # ``create_all`` builds what the migrations build: the models describe the SQLite table,
    # and Postgres partitions it as migration 0015 does.
    if connection.dialect.name == "postgresql":
        partitions.partition_events(connection, utcnow())


class EventId(Base):
    """The messageIds of stored events: ingest skips one seen before (``events.accept``).
    Deleted with their event by retention, so a repeat is skipped as long as the first is kept."""

    __tablename__ = "event_ids"

    message_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime]


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
        Index(
            "ix_enrollments_running_step",
            "journey_key",
            "version",
            "current_step",
            "step_since",
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
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
    # Appended by migration 0012: the operator page's waits and stuck view read it by index.
    step_since: Mapped[datetime | None] = mapped_column(
        doc="When the run entered its current step (its latest `entered` funnel row of it)."
    )


MESSAGE_HAS_CONTENT = (
    "subject IS NOT NULL OR body IS NOT NULL OR html IS NOT NULL OR headers IS NOT NULL"
)


class Message(Base):
    """The send log; a row exists before the provider is called, keyed by idempotency key."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_contact", "contact_id", "created_at"),
        Index("ix_messages_contact_channel_sent", "contact_id", "channel", "sent_at"),
        # Migration 0011: a journey's messages per step, for the stats.
        Index("ix_messages_journey_step", "journey_key", "version", "step_id"),
        # Migration 0014: the newest messages of any contact, and (partial) those whose
        # rendered content retention has yet to clear (store/retention.py).
        Index("ix_messages_created", "created_at"),
        Index(
            "ix_messages_content_created",
            "created_at",
            "id",
            postgresql_where=text(MESSAGE_HAS_CONTENT),
            sqlite_where=text(MESSAGE_HAS_CONTENT),
        ),
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
    # Appended by migration 0005: what went out, as the provider was given it.
    html: Mapped[str | None] = mapped_column(Text, doc="The rendered HTML part, if any.")
    headers: Mapped[dict[str, Any] | None] = mapped_column(
        Json, doc="Headers the provider was asked to send (List-Unsubscribe, ...)."
    )
    test: Mapped[bool] = mapped_column(
        Boolean,
        default=False,
        server_default=false(),
        doc="A test send (POST /v1/templates/{key}/test-send): out of stats and caps.",
    )
    # Appended by migration 0011: the outcomes delivery reports proved, for the stats.
    reached: Mapped[int] = mapped_column(
        Integer,
        default=0,
        server_default="0",
        doc="Bits of messages.REACHED_BITS: delivered, opened, clicked, bounced, ...",
    )
    # Appended by migration 0013: the run's variant when it sent, for the stats per variant.
    variant: Mapped[str | None] = mapped_column(
        String(50), doc="The run's variant at the send (None before a split)."
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


class StepCounter(Base):
    """Funnel rows counted as the runs write them (migration 0013): per journey version, step,
    variant ('' before a split: a key column cannot be NULL) and kind, spread over ``slot``s
    (from the enrollment id) so concurrent runs at one step seldom update the same row. The
    stats add the slots up instead of grouping every ``step_events`` row."""

    __tablename__ = "step_counters"

    journey_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    step_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    variant: Mapped[str] = mapped_column(String(50), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class Suppression(Base):
    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Device(Base):
    """A device a contact gets push notifications on: its FCM registration token, or a
    browser's web push subscription (token: its endpoint; with its keys)."""

    __tablename__ = "devices"

    token: Mapped[str] = mapped_column(String(1024), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(200), index=True)
    platform: Mapped[str] = mapped_column(String(20), doc="ios, android, web or webpush.")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Appended by migration 0009: a web push subscription's keys (its token is the endpoint).
    p256dh: Mapped[str | None] = mapped_column(
        String(200), doc="webpush: the browser's P-256 public key (base64url, RFC 8291)."
    )
    auth: Mapped[str | None] = mapped_column(
        String(100), doc="webpush: the subscription's authentication secret (base64url)."
    )


class DeviceSend(Base):
    """What became of one push message on one device token: a retry of the message calls FCM
    only for the tokens that have no row here (FCM takes no idempotency key)."""

    __tablename__ = "device_sends"

    message_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    token: Mapped[str] = mapped_column(String(1024), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(20), doc="sent, unknown or removed.")
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Topic(Base):
    """A subscription topic (newsletter, promotions): sends naming it go to subscribers only."""

    __tablename__ = "topics"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(10), doc="opt_out or opt_in: who is subscribed.")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ContactTopic(Base):
    """A contact's explicit choice for one topic; no row means the topic's default."""

    __tablename__ = "contact_topics"
    __table_args__ = (Index("ix_contact_topics_topic", "topic", "subscribed"),)

    contact_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    topic: Mapped[str] = mapped_column(String(100), primary_key=True)
    subscribed: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(50), doc="identify, api, link, preferences.")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


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


class ContactKey(Base):
    """A contact's data key, wrapped by one of the settings' encryption keys. The payloads of
    the contact's runs are sealed with it; erasing the contact deletes the row, and with it the
    only way to read them (crypto-shredding)."""

    __tablename__ = "contact_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # As workflow ids show the contact: a keyed hash of its userId.
    contact: Mapped[str] = mapped_column(String(200), unique=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_with: Mapped[str] = mapped_column(String(100), doc="The encryption key id.")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxEntry(Base):
    """An accepted event not yet routed to Temporal; deleted once it has been. One the client
    refused for good is parked (``parked_at`` set, with its error) until an operator retries or
    drops it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_contact_id", "contact_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    contact_id: Mapped[str] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    parked_at: Mapped[datetime | None]
    # The event's own ``received_at`` (migration 0015): with the id it names the event's month,
    # so the relay's read of it touches one partition of ``events``, not every one.
    received_at: Mapped[datetime]


class SegmentRow(Base):
    """A segment document; ``version`` moves on when its definition changes."""

    __tablename__ = "segments"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    definition: Mapped[dict[str, Any]] = mapped_column()
    version: Mapped[int] = mapped_column(Integer)
    backfilled_version: Mapped[int | None] = mapped_column(
        Integer, doc="The version whose backfill workflow finished."
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SegmentMember(Base):
    """A contact inside a segment, since ``entered_at``."""

    __tablename__ = "segment_members"
    __table_args__ = (Index("ix_segment_members_contact", "contact_id", "segment_key"),)

    segment_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    entered_at: Mapped[datetime] = mapped_column()


class Broadcast(Base):
    """A one-off send (a template, or entry into a journey) to a segment's members, run by
    the workflow ``broadcast/<id>``; ``total`` is set once the members snapshot is taken."""

    __tablename__ = "broadcasts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    segment_key: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str | None] = mapped_column(String(20))
    template: Mapped[str | None] = mapped_column(String(100))
    journey_key: Mapped[str | None] = mapped_column(String(100))
    topic: Mapped[str | None] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    send_at: Mapped[datetime | None] = mapped_column(doc="None: as soon as it is created.")
    local_time: Mapped[str | None] = mapped_column(
        String(5), doc="HH:MM: each recipient at this time in their own zone."
    )
    rate_per_minute: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="scheduled")
    total: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class BroadcastRecipient(Base):
    """One member of a broadcast's snapshot: when it is due, and what became of it."""

    __tablename__ = "broadcast_recipients"
    __table_args__ = (
        Index("ix_broadcast_recipients_due", "broadcast_id", "due_at", "contact_id"),
        Index("ix_broadcast_recipients_status", "broadcast_id", "status"),
    )

    broadcast_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    due_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(20), default="queued")
    reason: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(64))
