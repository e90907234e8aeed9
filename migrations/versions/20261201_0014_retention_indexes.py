"""Indexes for retention and for the API's reads of events and messages by time.

- ``ix_events_contact_time`` (contact_id, timestamp): a contact's events newest first (the
  operator page's contact timeline, ``store/views.py``) read from the index in order instead of
  fetching every event of the contact through ``ix_events_contact_name_time`` and sorting them.
- ``ix_messages_created`` (created_at): ``GET /v1/messages`` without a contact (by status,
  journey or test mark, newest first) walks the newest rows instead of sorting the table.
- ``ix_messages_content_created`` (created_at, id), partial: only messages whose rendered
  content is still stored, so the daily retention pass (``store/retention.py``) reads exactly
  the rows it has left to clear, and the index holds only the retention period's messages.

The events pass of retention walks the primary key and needs no index of its own.

On a large Postgres table each CREATE INDEX blocks writes to its table while it builds; build
them beforehand with CREATE INDEX CONCURRENTLY under the same names and this migration finds
them (``if_not_exists``).

Revision ID: 0014_retention_indexes
Revises: 0013_stats_counters
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_retention_indexes"
down_revision: str | None = "0013_stats_counters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same predicate as store/retention.py's HAS_CONTENT, so the planner uses the index.
HAS_CONTENT = "subject IS NOT NULL OR body IS NOT NULL OR html IS NOT NULL OR headers IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_events_contact_time", "events", ["contact_id", "timestamp"], if_not_exists=True
    )
    op.create_index("ix_messages_created", "messages", ["created_at"], if_not_exists=True)
    op.create_index(
        "ix_messages_content_created",
        "messages",
        ["created_at", "id"],
        postgresql_where=sa.text(HAS_CONTENT),
        sqlite_where=sa.text(HAS_CONTENT),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_content_created", table_name="messages")
    op.drop_index("ix_messages_created", table_name="messages")
    op.drop_index("ix_events_contact_time", table_name="events")
