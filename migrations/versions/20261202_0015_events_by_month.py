"""Events partitioned by month of receipt on Postgres; deduplication in ``event_ids``.

Why: retention deleted old events row by row, each deletion a dead row for vacuum and a WAL
record for every replica; at millions of events a day that is hours of churn. With a partition
per month, retention swaps a whole month for the few rows it must keep and drops the rest as a
catalogue change (``store/partitions.py``, ``store/retention.py``).

A unique index on a partitioned table must hold the partition key, so ``events.message_id``
can no longer be unique there: ingest deduplicates through ``event_ids`` (messageId primary
key, filled here from the stored events) on both databases. SQLite keeps one plain table.
Outbox entries carry their event's ``received_at``: the relay reads an entry's event by id and
month, one partition instead of all of them.

The existing rows are not copied: the old table becomes the partition ``events_before_<next
month>`` in place. Its primary key becomes ``(id, received_at)``, which rebuilds that index
(and filling ``event_ids`` reads every row): on a large table, run this in a quiet hour.

Revision ID: 0015_events_by_month
Revises: 0014_date_entry_index
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from temporal_journeys.store import partitions

revision: str = "0015_events_by_month"
down_revision: str | None = "0014_date_entry_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_ids",
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_event_ids")),
    )
    op.execute(
        "INSERT INTO event_ids (message_id, received_at) SELECT message_id, received_at FROM events"
    )
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("uq_events_message_id", type_="unique")
    # Each outbox entry names its event's month, so the relay reads one partition.
    op.add_column("outbox", sa.Column("received_at", sa.DateTime(timezone=True)))
    op.execute(
        "UPDATE outbox SET received_at = coalesce("
        "(SELECT received_at FROM events WHERE events.id = outbox.event_id), created_at)"
    )
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("received_at", nullable=False)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        partitions.partition_events(bind, datetime.now(UTC))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        partitions.unpartition_events(bind)
    with op.batch_alter_table("events") as batch:
        batch.create_unique_constraint("uq_events_message_id", ["message_id"])
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("received_at")
    op.drop_table("event_ids")
