"""``journeys retention``: the retention pass run here, against the configured database, with
its progress printed batch by batch (the same passes as the daily ``journeys-retention``
schedule's workflow)."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console(soft_wrap=True)


def retention(
    dry_run: bool = typer.Option(
        False, help="Count what would be deleted and cleared; change nothing."
    ),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        min=1,
        max=10_000,
        help="Rows per statement (default JOURNEYS_RETENTION_BATCH_SIZE).",
    ),
) -> None:
    """Delete events older than JOURNEYS_RETENTION_EVENTS_DAYS and clear the content of
    messages older than JOURNEYS_RETENTION_MESSAGE_BODIES_DAYS now, batch by batch."""
    # Imported here: the other commands start without the database and Temporal libraries.
    from temporal_journeys.activities.retention import bodies_pass, events_pass
    from temporal_journeys.journeys.settings import get_settings
    from temporal_journeys.store.db import Database
    from temporal_journeys.store.models import utcnow
    from temporal_journeys.workflows.retention import RetentionInput, describe

    settings = get_settings()
    db = Database(settings.database_url)
    state = RetentionInput(dry_run=dry_run, batch_size=batch_size, now=utcnow())
    assert state.now is not None
    try:
        for events in events_pass(
            db, settings, now=state.now, dry_run=dry_run, batch_size=batch_size
        ):
            state.events = events
            console.print(describe(state), markup=False)
        for bodies in bodies_pass(
            db, settings, now=state.now, dry_run=dry_run, batch_size=batch_size
        ):
            state.bodies = bodies
            console.print(describe(state), markup=False)
    finally:
        db.dispose()
    kept = state.events.kept_for_conditions
    if kept is not None:
        console.print(f"events kept for conditions: {kept}", markup=False)
