"""Funnel and message figures per journey version, grouped in the database: step events,
enrollments, and the send log with what the providers' delivery webhooks proved of each
message (``Message.reached``).

Each function is one statement that answers a handful of rows (per version, step, variant and
kind), whatever the number of enrollments or messages: the journey page and
``GET /v1/journeys/{key}/stats`` add those rows up, never the messages themselves. The funnel
rows, about ten per run, are not even read: the progress writes count them into
``step_counters`` as they insert them (store/enrollments.py), and a message carries its run's
variant (``Message.variant``), so no statement joins two large tables. Measured in
docs/benchmarks.md (``bench/ui.py``).

A time range (``since`` inclusive, ``until`` exclusive, either open) selects step events by
when they happened, enrollments by when they started and messages by when they were sent (or,
for one never sent, when the step tried): what happened to those messages since, a late open
included, counts with them, so a rate never mixes two populations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from temporal_journeys.store.messages import REACHED_BITS
from temporal_journeys.store.models import Enrollment, Message, StepCounter, StepEvent

# Outcomes a message may have reached, each a bit of ``Message.reached`` that the delivery
# reports set (``messages.advance``): each message counts once per outcome (two opens of one
# message are one opened message), and an open after the click still counts.
EVIDENCE: tuple[str, ...] = tuple(REACHED_BITS)
# Accepted by the provider (or may have been: ``unknown`` counts as sent, as the step does),
# whatever became of it after.
SENT = (
    "unknown",
    "sent",
    "delayed",
    "delivered",
    "opened",
    "clicked",
    "unsubscribed",
    "spamreport",
    "undelivered",
    "bounced",
)
PENDING = ("pending", "deferred", "sending")  # not settled yet: held back, or being sent
OUTCOMES = ("sent", *EVIDENCE, "failed", "skipped", "pending")

# Why a send was skipped, from the reason the send guards (activities/send_guards.py) wrote:
# a class, since the reason itself names the address or the cap. First match wins (a topic's
# "unsubscribed from topic" before the channel's "unsubscribed from").
SKIP_REASONS: tuple[tuple[str, str], ...] = (
    ("no email address", "no_address"),
    ("no phone number", "no_address"),
    ("no push device registered", "no_address"),
    ("invalid %", "invalid_address"),
    ("unsubscribed from topic %", "topic"),
    ("not opted in to topic %", "topic"),
    ("unknown topic %", "topic"),
    ("unsubscribed from %", "unsubscribed"),
    ("suppressed: %", "suppressed"),
    ("frequency cap%", "frequency_cap"),
)


@dataclass(frozen=True)
class Window:
    """Which versions and what time range the figures cover; every part optional."""

    version: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def of(self, moment: Any, version: Any) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.version is not None:
            conditions.append(version == self.version)
        if self.since is not None:
            conditions.append(moment >= self.since)
        if self.until is not None:
            conditions.append(moment < self.until)
        return conditions


EVERYTHING = Window()


def step_event_counts(
    session: Session, journey_key: str, window: Window = EVERYTHING
) -> list[tuple[int, str, str | None, str, int]]:
    """(version, step id, variant, kind, count) of the journey's funnel rows that name a step;
    the variant is the run's when the row was written (None before a split).

    Without a time range, from ``step_counters`` (the progress writes count each row they
    insert, in the same transaction): a few hundred rows whatever the number of runs. A time
    range groups the ``step_events`` rows themselves, since counters know no moments: exact,
    but it reads every funnel row of the journey (270 ms for a million)."""
    if window.since is None and window.until is None:
        return _counted_steps(session, journey_key, window.version)
    rows = session.execute(
        select(
            StepEvent.version, StepEvent.step_id, StepEvent.variant, StepEvent.kind, func.count()
        )
        .where(
            StepEvent.journey_key == journey_key,
            StepEvent.step_id.is_not(None),
            *window.of(StepEvent.at, StepEvent.version),
        )
        .group_by(StepEvent.version, StepEvent.step_id, StepEvent.variant, StepEvent.kind)
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


def _counted_steps(
    session: Session, journey_key: str, version: int | None
) -> list[tuple[int, str, str | None, str, int]]:
    """The slots of ``step_counters`` added up; '' is the counters' "no variant"."""
    query = select(
        StepCounter.version,
        StepCounter.step_id,
        StepCounter.variant,
        StepCounter.kind,
        func.sum(StepCounter.count),
    ).where(StepCounter.journey_key == journey_key)
    if version is not None:
        query = query.where(StepCounter.version == version)
    query = query.group_by(
        StepCounter.version, StepCounter.step_id, StepCounter.variant, StepCounter.kind
    )
    return [
        (version_, step_id, variant or None, kind, int(count))
        for version_, step_id, variant, kind, count in session.execute(query)
        if count
    ]


def enrollment_counts(
    session: Session, journey_key: str, window: Window = EVERYTHING
) -> list[tuple[int, str, str | None, str | None, bool, int]]:
    """(version, status, current step, variant, converted, count) of the journey's
    enrollments: by status and step for the funnel's "waiting now", by variant and conversion
    for the experiment, from one pass over them (two cost 50 ms at 100,000 enrollments)."""
    rows = session.execute(
        select(
            Enrollment.version,
            Enrollment.status,
            Enrollment.current_step,
            Enrollment.variant,
            Enrollment.converted,
            func.count(),
        )
        .where(
            Enrollment.journey_key == journey_key,
            *window.of(Enrollment.started_at, Enrollment.version),
        )
        .group_by(
            Enrollment.version,
            Enrollment.status,
            Enrollment.current_step,
            Enrollment.variant,
            Enrollment.converted,
        )
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


def _sent_at() -> ColumnElement[datetime]:
    return func.coalesce(Message.sent_at, Message.created_at)


def _messages_of(journey_key: str, window: Window) -> list[ColumnElement[bool]]:
    # A template's test send reaches a marketer, not a contact: never in the figures.
    return [
        Message.journey_key == journey_key,
        Message.test.is_(False),
        *window.of(_sent_at(), Message.version),
    ]


def _skip_reason() -> ColumnElement[str | None]:
    """A skipped message's reason class; None for any other message."""
    return case(
        (Message.status != "skipped", None),
        *[(Message.error.like(pattern), reason) for pattern, reason in SKIP_REASONS],
        else_="other",
    )


def message_counts(
    session: Session, journey_key: str, window: Window = EVERYTHING
) -> list[dict[str, Any]]:
    """Per (version, step, variant, channel, skip reason): how many of the journey's messages
    reached each outcome of ``OUTCOMES``, in one pass over them. ``skip_reason`` is the class of
    ``SKIP_REASONS`` on the rows counting skipped messages, None on the others. The variant is
    the run's when it sent (``Message.variant``, None for runs that met no split)."""

    # ``count(*) FILTER (WHERE ...)`` (Postgres, SQLite 3.30+): a fifth cheaper than
    # ``sum(CASE ...)`` over 170,000 messages, most of the statement's time past the scan.
    def reached(name: str) -> ColumnElement[int]:
        proven = Message.reached.op("&")(REACHED_BITS[name]) != 0
        return func.count().filter(proven).label(name)

    def status_in(name: str, statuses: tuple[str, ...]) -> ColumnElement[int]:
        return func.count().filter(Message.status.in_(statuses)).label(name)

    reason = _skip_reason().label("skip_reason")
    query = (
        select(
            Message.version,
            Message.step_id,
            Message.variant,
            Message.channel,
            reason,
            status_in("sent", SENT),
            *[reached(name) for name in EVIDENCE],
            status_in("failed", ("failed",)),
            status_in("skipped", ("skipped",)),
            status_in("pending", PENDING),
        )
        .where(*_messages_of(journey_key, window))
        .group_by(Message.version, Message.step_id, Message.variant, Message.channel, reason)
    )
    return [
        {
            "version": row.version,
            "step": row.step_id,
            "variant": row.variant,
            "channel": row.channel,
            "skip_reason": row.skip_reason,
            **{name: int(getattr(row, name) or 0) for name in OUTCOMES},
        }
        for row in session.execute(query)
    ]
