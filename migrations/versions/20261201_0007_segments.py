"""Segments: stored definitions and their members, kept up to date on ingest and by schedules.

``segments`` holds each segment document with a version that moves on when the definition
changes (the backfill workflow of that version records itself in ``backfilled_version``);
``segment_members`` one row per (segment, contact), looked up by contact on every identify and
track.

Revision ID: 0007_segments
Revises: 0006_contact_keys
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0007_segments"
down_revision: str | None = "0006_contact_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("backfilled_version", sa.Integer(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_segments")),
    )
    op.create_table(
        "segment_members",
        sa.Column("segment_key", sa.String(100), nullable=False),
        sa.Column("contact_id", sa.String(200), nullable=False),
        sa.Column("entered_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("segment_key", "contact_id", name=op.f("pk_segment_members")),
    )
    op.create_index("ix_segment_members_contact", "segment_members", ["contact_id", "segment_key"])


def downgrade() -> None:
    op.drop_index("ix_segment_members_contact", table_name="segment_members")
    op.drop_table("segment_members")
    op.drop_table("segments")
