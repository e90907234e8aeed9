"""Channels: when each message went out, webhook template URLs, and delivery receipts.

Why: frequency caps count a contact's messages per channel over a rolling window of the
workflow's own clock (``messages.sent_at``, which in a time-skipping test runs ahead of the wall
clock); delivery webhooks look messages up by the provider's id and inbound SMS look contacts up
by phone number; the webhook channel needs a URL per template; and SendGrid and Twilio repeat
their delivery webhooks, so each delivery event is kept by its provider id to be applied once.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("sent_at", TIME, nullable=True))
    op.create_index(
        "ix_messages_contact_channel_sent", "messages", ["contact_id", "channel", "sent_at"]
    )
    op.create_index("ix_messages_provider_message_id", "messages", ["provider_message_id"])
    op.create_index("ix_contacts_phone", "contacts", ["phone"])
    with op.batch_alter_table("templates") as batch:
        batch.add_column(sa.Column("url", sa.Text(), nullable=True))
    op.create_table(
        "delivery_receipts",
        sa.Column("id", sa.String(300), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_receipts")),
    )


def downgrade() -> None:
    op.drop_table("delivery_receipts")
    with op.batch_alter_table("templates") as batch:
        batch.drop_column("url")
    op.drop_index("ix_contacts_phone", table_name="contacts")
    op.drop_index("ix_messages_provider_message_id", table_name="messages")
    op.drop_index("ix_messages_contact_channel_sent", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("sent_at")
