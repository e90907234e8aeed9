"""An index for date-based entry's candidate query: the month and day of ``birthday``.

A yearly ``date_attribute`` fire (``store/date_entry.py`` ``candidates``) asks for the contacts
whose date falls on a few days (``substr(trim(<trait>), 6, 5) IN ('12-01', ...)``). Without an
index that is a scan of every contact, decoding each one's JSON traits, at each fire of each
date journey. The trait is read from JSON, so no plain column index can serve it: this is an
expression index on exactly the query's expression for ``birthday`` (the seeds' and examples'
date attribute), on Postgres and on SQLite (both match an expression index when the query
writes the same expression with the same constants, which the query does). A journey on
another date attribute wants the same index with its name (docs/operating.md).

On a large Postgres table CREATE INDEX blocks writes to contacts while it builds; build it
beforehand with CREATE INDEX CONCURRENTLY under the same name and this migration finds it
(``if_not_exists``).

Revision ID: 0014_date_entry_index
Revises: 0014_retention_indexes
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_date_entry_index"
# Written to follow 0013_stats_counters; chained after 0014_retention_indexes, the other
# migration of the same day, so that the revisions keep one head.
down_revision: str | None = "0014_retention_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As store/models.py BIRTHDAY_DAY and store/date_entry.py write it.
BIRTHDAY_DAY = {
    "postgresql": "substr(TRIM(BOTH FROM traits ->> 'birthday'), 6, 5)",
    "sqlite": "substr(trim(json_extract(traits, '$.\"birthday\"')), 6, 5)",
}


def upgrade() -> None:
    expression = BIRTHDAY_DAY[op.get_bind().dialect.name]
    op.create_index(
        "ix_contacts_birthday_day", "contacts", [sa.text(expression)], if_not_exists=True
    )


def downgrade() -> None:
    op.drop_index("ix_contacts_birthday_day", table_name="contacts")
