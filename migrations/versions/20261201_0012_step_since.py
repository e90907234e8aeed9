"""When each running enrollment entered the step it is at (``enrollments.step_since``).

The operator page (``/ui``) shows, per step, how long its longest-waiting contact has waited,
and lists the contacts waiting longer than the step's wait or timeout. Found from the funnel
rows, that joined every running enrollment with its step events: 400 ms with 100,000
enrollments. Kept on the row by the run's progress writes, it is an index range: the partial
index holds the running rows only, by journey, version, step and that moment. Existing running
rows get it from their latest ``entered`` row of their current step, or their start.

Revision ID: 0012_step_since
Revises: 0011_message_metrics
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_step_since"
down_revision: str | None = "0011_message_metrics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    op.add_column("enrollments", sa.Column("step_since", sa.DateTime(timezone=True)))
    op.execute(
        "UPDATE enrollments SET step_since = coalesce((SELECT max(step_events.at) FROM "
        "step_events WHERE step_events.enrollment_id = enrollments.id AND step_events.step_id "
        "= enrollments.current_step AND step_events.kind = 'entered'), started_at) "
        "WHERE status = 'running'"
    )
    op.create_index(
        "ix_enrollments_running_step",
        "enrollments",
        ["journey_key", "version", "current_step", "step_since"],
        postgresql_where=RUNNING,
        sqlite_where=RUNNING,
    )


def downgrade() -> None:
    op.drop_index("ix_enrollments_running_step", table_name="enrollments")
    op.drop_column("enrollments", "step_since")
