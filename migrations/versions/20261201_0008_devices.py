"""Push devices: each contact's FCM registration tokens, and per message which tokens were
called (so a retried push message reaches only the devices it has not reached yet).

Revision ID: 0008_devices
Revises: 0007_segments
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_devices"
down_revision: str | None = "0007_segments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("token", sa.String(1024), nullable=False),
        sa.Column("contact_id", sa.String(200), nullable=False),
        sa.Column("platform", sa.String(20), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_devices")),
    )
    op.create_index(op.f("ix_devices_contact_id"), "devices", ["contact_id"])
    op.create_table(
        "device_sends",
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("token", sa.String(1024), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("provider_message_id", sa.String(200), nullable=True),
        sa.Column("at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("message_id", "token", name=op.f("pk_device_sends")),
    )


def downgrade() -> None:
    op.drop_table("device_sends")
    op.drop_index(op.f("ix_devices_contact_id"), table_name="devices")
    op.drop_table("devices")
