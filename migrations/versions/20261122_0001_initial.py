"""Initial schema: every table of the first release.

Why: the engine needs contacts and their events, templates, journeys and their published
versions, enrollments (one per run), the send log that makes sends exactly-once, the funnel rows
behind the stats, suppressions, the idempotency keys of applied operations, hashed API keys and
the event outbox, all at once. Later changes come as revisions of their own.

The column types are spelled out here rather than imported from ``store.models``, so that this
revision keeps building the same schema when the models move on.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSONB on Postgres, JSON (text) on SQLite.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def _id() -> sa.Column:
    """An auto-incremented ``id``; the table names its primary key constraint."""
    return sa.Column("id", BIG_ID, autoincrement=True, nullable=False)


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("phone", sa.String(40)),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("traits", JSON, nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("scores", JSON, nullable=False),
        sa.Column("unsubscribed", JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )

    op.create_table(
        "events",
        _id(),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("contact_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("properties", JSON, nullable=False),
        sa.Column("timestamp", TIME, nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("message_id", name=op.f("uq_events_message_id")),
    )
    op.create_index("ix_events_contact_name_time", "events", ["contact_id", "name", "timestamp"])

    op.create_table(
        "templates",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("subject", sa.Text()),
        sa.Column("html", sa.Text()),
        sa.Column("text", sa.Text()),
        sa.Column("provider_template_id", sa.String(200)),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_templates")),
    )

    op.create_table(
        "journeys",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("draft", JSON),
        sa.Column("latest_version", sa.Integer()),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_journeys")),
    )

    op.create_table(
        "journey_versions",
        sa.Column("journey_key", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("published_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("journey_key", "version", name=op.f("pk_journey_versions")),
    )

    op.create_table(
        "enrollments",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("workflow_id", sa.String(400), nullable=False),
        sa.Column("journey_key", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.String(200), nullable=False),
        sa.Column("correlation", sa.String(200)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("current_step", sa.String(100)),
        sa.Column("variant", sa.String(50)),
        sa.Column("converted", sa.Boolean(), nullable=False),
        sa.Column("exit_reason", sa.Text()),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("ended_at", TIME),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
    )
    op.create_index(op.f("ix_enrollments_workflow_id"), "enrollments", ["workflow_id"])
    op.create_index(
        "ix_enrollments_journey_status", "enrollments", ["journey_key", "version", "status"]
    )
    op.create_index("ix_enrollments_contact", "enrollments", ["contact_id", "journey_key"])

    op.create_table(
        "messages",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(400), nullable=False),
        sa.Column("contact_id", sa.String(200), nullable=False),
        sa.Column("journey_key", sa.String(100)),
        sa.Column("version", sa.Integer()),
        sa.Column("step_id", sa.String(100)),
        sa.Column("workflow_id", sa.String(400)),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("template", sa.String(100), nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("to_address", sa.String(320)),
        sa.Column("subject", sa.Text()),
        sa.Column("body", sa.Text()),
        sa.Column("provider_message_id", sa.String(200)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_history", JSON, nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_messages_idempotency_key")),
    )
    op.create_index("ix_messages_contact", "messages", ["contact_id", "created_at"])

    op.create_table(
        "step_events",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("enrollment_id", sa.String(100), nullable=False),
        sa.Column("journey_key", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(100)),
        sa.Column("contact_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("variant", sa.String(50)),
        sa.Column("detail", sa.Text()),
        sa.Column("at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_events")),
    )
    op.create_index(op.f("ix_step_events_enrollment_id"), "step_events", ["enrollment_id"])
    op.create_index(
        "ix_step_events_journey_step", "step_events", ["journey_key", "version", "step_id"]
    )

    op.create_table(
        "suppressions",
        _id(),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(50), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("channel", "address", name=op.f("uq_suppressions_channel")),
    )

    op.create_table(
        "applied_operations",
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("applied_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_applied_operations")),
    )

    op.create_table(
        "api_keys",
        _id(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("revoked_at", TIME),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("digest", name=op.f("uq_api_keys_digest")),
    )

    op.create_table(
        "outbox",
        _id(),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.String(200), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_contact_id", "outbox", ["contact_id", "id"])


def downgrade() -> None:
    # Dropping a table drops its indexes and constraints with it.
    for table in (
        "outbox",
        "api_keys",
        "applied_operations",
        "suppressions",
        "step_events",
        "messages",
        "enrollments",
        "journey_versions",
        "journeys",
        "templates",
        "events",
        "contacts",
    ):
        op.drop_table(table)
