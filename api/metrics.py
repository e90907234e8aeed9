"""Prometheus metrics of the API process, served at /metrics.

Counters and the latency histogram count what this process did since it started (Prometheus
counters: they start at zero again after a restart, which ``rate()`` and ``increase()`` take in
their stride). The outbox gauges are read from the database at each scrape, so every API
process reports the same backlog, whichever relays run."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from temporal_journeys.store import outbox
from temporal_journeys.store.db import Database

log = logging.getLogger("journeys.api.metrics")

ACCEPTED = Counter("journeys_events_accepted_total", "Calls stored by the ingestion API")
DUPLICATES = Counter("journeys_events_duplicate_total", "Calls whose messageId was seen before")
RELAYED = Counter("journeys_events_relayed_total", "Events routed to Temporal by the relay")
RELAY_ERRORS = Counter(
    "journeys_relay_errors_total", "Relay attempts that failed: retried later, or parked"
)
OUTBOX_PENDING = Gauge(
    "journeys_outbox_pending", "Events waiting in the outbox for the relay (read at scrape time)"
)
OUTBOX_PARKED = Gauge(
    "journeys_outbox_parked", "Events the relay parked, waiting for an operator (read at scrape)"
)
LATENCY = Histogram(
    "journeys_event_to_signal_seconds",
    "From an event's arrival to its routing into Temporal",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


def observe_latency(received_at: datetime) -> None:
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    LATENCY.observe(max((datetime.now(UTC) - received_at).total_seconds(), 0))


def exposition(db: Database) -> bytes:
    """The Prometheus text, with the outbox gauges read from ``db`` now."""
    try:
        with db.transaction() as session:
            OUTBOX_PENDING.set(outbox.pending(session))
            OUTBOX_PARKED.set(outbox.parked_count(session))
    except SQLAlchemyError as exc:
        # The counters are still worth serving; unknown gauges must not look like an empty queue.
        log.warning("outbox gauges not read: %s", type(exc).__name__)
        OUTBOX_PENDING.set(float("nan"))
        OUTBOX_PARKED.set(float("nan"))
    return generate_latest()
