"""What each message said: its HTML part, the headers sent with it, and a test-send mark.

Why: the message log kept the subject and one body (the text, or the HTML when there was no
text), so nobody could see the HTML of an email nor the List-Unsubscribe link it carried; and
a template's test send (``POST /v1/templates/{key}/test-send``) needs rows that stats and
frequency caps leave out. ``body`` keeps the text part from now on; ``html`` the HTML part;
``headers`` what the provider was asked to send; ``test`` marks test sends (false for every
existing row).

Revision ID: 0005_message_content
Revises: 0004_topics
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_message_content"
down_revision: str | None = "0004_topics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSONB on Postgres, JSON (text) on SQLite, as in 0001.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("html", sa.Text(), nullable=True))
        batch.add_column(sa.Column("headers", JSON, nullable=True))
        batch.add_column(sa.Column("test", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("test")
        batch.drop_column("headers")
        batch.drop_column("html")
