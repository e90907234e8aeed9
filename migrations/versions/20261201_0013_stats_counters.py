"""The journey page under 200 ms at 100,000 enrollments: ``messages.variant`` and
``step_counters``.

``messages.variant`` is the run's variant when it sent (the send activity's input carries it):
the stats per variant found it by joining each message to its enrollment through the
idempotency key's prefix, 300-500 ms with 100,000 enrollments. Existing rows get it from that
same join, once.

``step_counters`` counts the funnel rows per journey version, step, variant ('' before a
split) and kind as the runs' progress writes insert them, in the same transaction, spread over
slots so concurrent runs at one step seldom update one row; the stats add up a few hundred rows
instead of grouping every ``step_events`` row (270 ms for a million). Existing funnel rows are
counted into slot 0.

Revision ID: 0013_stats_counters
Revises: 0012_step_since
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_stats_counters"
down_revision: str | None = "0012_step_since"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A message's enrollment: among those of its workflow id, the one whose ``{workflow id}/{entry
# id}/`` prefixes its idempotency key (workflows/journey.py ``_operation_key``); compared as a
# prefix, not with LIKE, since ids may hold ``_`` and ``%``.
_VARIANT_OF_MESSAGE = (
    "UPDATE messages SET variant = (SELECT enrollments.variant FROM enrollments"
    " WHERE enrollments.workflow_id = messages.workflow_id"
    " AND substr(messages.idempotency_key, 1,"
    " length(enrollments.workflow_id || '/' || enrollments.id || '/'))"
    " = enrollments.workflow_id || '/' || enrollments.id || '/'"
    " LIMIT 1)"
    " WHERE messages.journey_key IS NOT NULL AND messages.workflow_id IS NOT NULL"
)


def upgrade() -> None:
    op.add_column("messages", sa.Column("variant", sa.String(50)))
    op.execute(_VARIANT_OF_MESSAGE)
    op.create_table(
        "step_counters",
        sa.Column("journey_key", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(100), nullable=False),
        sa.Column("variant", sa.String(50), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "journey_key",
            "version",
            "step_id",
            "variant",
            "kind",
            "slot",
            name=op.f("pk_step_counters"),
        ),
    )
    op.execute(
        "INSERT INTO step_counters (journey_key, version, step_id, variant, kind, slot, count)"
        " SELECT journey_key, version, step_id, coalesce(variant, ''), kind, 0, count(*)"
        " FROM step_events WHERE step_id IS NOT NULL"
        " GROUP BY journey_key, version, step_id, coalesce(variant, ''), kind"
    )


def downgrade() -> None:
    op.drop_table("step_counters")
    op.drop_column("messages", "variant")
