"""Broadcasts: one-off sends to a segment, and the snapshot of their recipients.

``broadcasts`` holds each broadcast (a template on a channel, or a journey to enter) and its
status; ``broadcast_recipients`` the segment's members as they were when it started, one row
each with when it is due (a local time differs by zone) and what became of it, paged by
``(broadcast_id, due_at, contact_id)``.

Revision ID: 0010_broadcasts
Revises: 0009_webpush_keys
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0010_broadcasts"
down_revision: str | None = "0009_webpush_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("segment_key", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(20), nullable=True),
        sa.Column("template", sa.String(100), nullable=True),
        sa.Column("journey_key", sa.String(100), nullable=True),
        sa.Column("topic", sa.String(100), nullable=True),
        sa.Column("data", JSON, nullable=False),
        sa.Column("send_at", TIME, nullable=True),
        sa.Column("local_time", sa.String(5), nullable=True),
        sa.Column("rate_per_minute", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("started_at", TIME, nullable=True),
        sa.Column("finished_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcasts")),
    )
    op.create_table(
        "broadcast_recipients",
        sa.Column("broadcast_id", sa.String(64), nullable=False),
        sa.Column("contact_id", sa.String(200), nullable=False),
        sa.Column("due_at", TIME, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("broadcast_id", "contact_id", name=op.f("pk_broadcast_recipients")),
    )
    op.create_index(
        "ix_broadcast_recipients_due",
        "broadcast_recipients",
        ["broadcast_id", "due_at", "contact_id"],
    )
    op.create_index(
        "ix_broadcast_recipients_status", "broadcast_recipients", ["broadcast_id", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_broadcast_recipients_status", table_name="broadcast_recipients")
    op.drop_index("ix_broadcast_recipients_due", table_name="broadcast_recipients")
    op.drop_table("broadcast_recipients")
    op.drop_table("broadcasts")
