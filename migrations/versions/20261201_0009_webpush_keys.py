"""Web push subscriptions as devices: a browser's subscription is a device of platform
``webpush`` whose token is its push service endpoint, with the two keys (RFC 8291) its
messages are encrypted to.

Revision ID: 0009_webpush_keys
Revises: 0008_devices
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_webpush_keys"
down_revision: str | None = "0008_devices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("devices", sa.Column("p256dh", sa.String(200), nullable=True))
    op.add_column("devices", sa.Column("auth", sa.String(100), nullable=True))


def downgrade() -> None:
    op.drop_column("devices", "auth")
    op.drop_column("devices", "p256dh")
