"""Prometheus metrics of the API process, served at /metrics."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

ACCEPTED = Counter("journeys_events_accepted_total", "Calls stored by the ingestion API")
DUPLICATES = Counter("journeys_events_duplicate_total", "Calls whose messageId was seen before")
RELAYED = Counter("journeys_events_relayed_total", "Events routed to Temporal by the relay")
RELAY_ERRORS = Counter("journeys_relay_errors_total", "Events the relay must retry")
OUTBOX_PENDING = Gauge("journeys_outbox_pending", "Events claimed but not routed in the last pass")
LATENCY = Histogram(
    "journeys_event_to_signal_seconds",
    "From an event's arrival to its routing into Temporal",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


def observe_latency(received_at: datetime) -> None:
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    LATENCY.observe(max((datetime.now(UTC) - received_at).total_seconds(), 0))
