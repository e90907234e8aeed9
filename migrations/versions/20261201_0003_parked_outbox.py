"""Parked outbox entries: an event Temporal's client refuses for good is set aside.

Why: one event the client could not encode (or that Temporal refused as invalid) used to roll
back the relay's whole pass and was retried every second, holding up every contact and
starting the other contacts' runs again on each retry. The relay now parks such an entry: it
stays in ``outbox`` with its error and attempt count and the time it was parked, out of the
pending queue, until an operator retries or drops it. Pending entries are those with no
``parked_at``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("parked_at", TIME, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("parked_at")
