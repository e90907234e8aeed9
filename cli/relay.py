"""``journeys relay``: the outbox relay in a process of its own, without the HTTP API.

The same relay as the API's (``JOURNEYS_RELAY``), with the same settings: database, Temporal
address and namespace, and the payload codec's keys, so what it starts and signals the workers
can read. On Postgres it listens for the API's notifications and routes an event as soon as the
ingest that stored it commits; its poll stays as the fallback (a notification lost while its
listening connection was down, events queued by other paths). SIGTERM or SIGINT ends it after
the pass under way: the events it delivered are committed and its contacts' locks released."""

from __future__ import annotations

import typer

from temporal_journeys.journeys.settings import Settings, get_settings


def relay(
    poll_seconds: float = typer.Option(
        1.0, "--poll-seconds", min=0.05, help="Seconds between passes when nothing wakes it."
    ),
    batch_size: int = typer.Option(
        500, "--batch-size", min=1, max=10_000, help="Outbox entries claimed per pass."
    ),
    concurrency: int = typer.Option(
        8, min=1, max=256, help="Contacts whose events go out at once (Postgres)."
    ),
) -> None:
    """Run the outbox relay alone (no HTTP API): events accepted by any API process are routed
    to Temporal, in order per contact, once. Run one or more beside API processes started
    with JOURNEYS_RELAY=false."""
    import asyncio
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_relay(get_settings(), poll_seconds, batch_size, concurrency))


async def _relay(
    settings: Settings, poll_seconds: float, batch_size: int, concurrency: int
) -> None:
    import asyncio
    import logging
    import signal

    # Imported here: the other commands start without the database and Temporal libraries.
    from temporal_journeys.api.services.relay import OutboxRelay
    from temporal_journeys.api.temporal import TemporalConnection
    from temporal_journeys.store.contact_keys import keyring
    from temporal_journeys.store.db import Database

    log = logging.getLogger("journeys.relay")
    db = Database(settings.database_url)
    # One keyring for the client's codec, as the API's: runs started here seal their data with
    # the contact's key.
    connection = TemporalConnection(settings, contact_keys=keyring(db, settings))
    outbox_relay = OutboxRelay(db, connection, settings, batch=batch_size, concurrency=concurrency)
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, outbox_relay.stop)
    listening = db.dialect == "postgresql"
    log.info(
        "outbox relay started: database %s, Temporal %s (namespace %s), %s, poll every %s s",
        db.engine.url.render_as_string(hide_password=True),
        settings.temporal_address,
        settings.temporal_namespace,
        "woken by the API's notifications" if listening else "polling (SQLite)",
        poll_seconds,
    )
    connection.start()
    try:
        await outbox_relay.run(poll_seconds, listen=listening)
    finally:
        await connection.stop()
        db.dispose()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)
    log.info("outbox relay stopped")
