"""Subscription topics: the topics, and each contact's explicit choice per topic.

Why: a send may name a topic (newsletter, promotions); it goes only to contacts subscribed to
it, either by choice (a row here) or by the topic's default (``opt_out`` topics include
everyone who never said no, ``opt_in`` topics nobody who never said yes). One row per (contact,
topic) records when and how the choice was made (identify, API, unsubscribe link, preference
page); the index serves set-based selections of a topic's subscribers.

Revision ID: 0004_topics
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_topics"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "topics",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("type", sa.String(10), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_topics")),
    )
    op.create_table(
        "contact_topics",
        sa.Column("contact_id", sa.String(200), nullable=False),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(50), nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("contact_id", "topic", name=op.f("pk_contact_topics")),
    )
    op.create_index("ix_contact_topics_topic", "contact_topics", ["topic", "subscribed"])


def downgrade() -> None:
    op.drop_index("ix_contact_topics_topic", table_name="contact_topics")
    op.drop_table("contact_topics")
    op.drop_table("topics")
