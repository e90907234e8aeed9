"""Message metrics per journey step and variant (``GET /v1/journeys/{key}/stats``).

``messages.reached`` keeps, one bit per outcome, what the delivery reports proved of a message
(delivered 1, opened 2, clicked 4, bounced 8, complained 16, unsubscribed 32, undelivered 64),
whatever order they came in: a report arriving after a further one moves no status but still
proves something (an open after the click). The stats then count a journey's messages per
outcome from the messages alone instead of grouping every delivery receipt per message, which
took seconds with 100,000 enrollments. Existing rows get their bits from their receipts and
status. ``messages (journey_key, version, step_id)`` finds a journey's messages without reading
everyone's.

Revision ID: 0011_message_metrics
Revises: 0010_broadcasts
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_message_metrics"
down_revision: str | None = "0010_broadcasts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Bit -> the statuses (a message's, or a receipt's) that prove it; as store/messages.py had them
# when this revision was written.
PROVEN_BY: dict[int, tuple[str, ...]] = {
    1: ("delivered", "opened", "clicked", "spamreport", "unsubscribed"),
    2: ("opened", "clicked"),
    4: ("clicked",),
    8: ("bounced",),
    16: ("spamreport",),
    32: ("unsubscribed",),
    64: ("undelivered",),
}


def _backfill() -> str:
    terms = []
    for bit, statuses in PROVEN_BY.items():
        listed = ", ".join(f"'{s}'" for s in statuses)
        terms.append(
            f"CASE WHEN messages.status IN ({listed}) OR EXISTS (SELECT 1 FROM delivery_receipts"
            f" WHERE delivery_receipts.message_id = messages.id"
            f" AND delivery_receipts.status IN ({listed})) THEN {bit} ELSE 0 END"
        )
    return "UPDATE messages SET reached = " + " + ".join(terms)


def upgrade() -> None:
    op.add_column(
        "messages", sa.Column("reached", sa.Integer(), nullable=False, server_default="0")
    )
    op.create_index("ix_delivery_receipts_message", "delivery_receipts", ["message_id", "status"])
    op.execute(_backfill())
    # Only the backfill needs it: the webhooks write receipts by their own key.
    op.drop_index("ix_delivery_receipts_message", table_name="delivery_receipts")
    op.create_index("ix_messages_journey_step", "messages", ["journey_key", "version", "step_id"])


def downgrade() -> None:
    op.drop_index("ix_messages_journey_step", table_name="messages")
    op.drop_column("messages", "reached")
