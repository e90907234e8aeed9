"""Contact data keys, for erasure that reaches Temporal's histories.

Why: with encryption on, a contact's run payloads were sealed with the deployment's keys, so
erasing the contact left its data readable in every history until retention. Each contact now
gets a data key of its own (wrapped by the deployment's key); the payloads of its runs are
sealed with it, and erasure deletes the row.

Revision ID: 0006_contact_keys
Revises: 0005_message_content
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_contact_keys"
down_revision: str | None = "0005_message_content"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("contact", sa.String(200), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_with", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_keys")),
        sa.UniqueConstraint("contact", name=op.f("uq_contact_keys_contact")),
    )


def downgrade() -> None:
    op.drop_table("contact_keys")
