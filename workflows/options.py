"""Timeouts and retries of the journey workflow's activities, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio.common import RetryPolicy


@dataclass(frozen=True)
class ActivityOptions:
    send_timeout: timedelta = timedelta(seconds=60)
    """Longest one send attempt may take, provider call included."""
    send_heartbeat: timedelta = timedelta(seconds=10)
    """A worker that dies mid-send is noticed after this, not after ``send_timeout``."""
    side_effect_timeout: timedelta = timedelta(seconds=30)
    """Longest one contact update or journey entry may take."""
    bookkeeping_timeout: timedelta = timedelta(seconds=15)
    """Longest one local activity (enrollment, progress, condition data) may take."""
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(minutes=5),
        )
    )
    """Transient failures (database down, provider 5xx) retry until they pass: a contact is
    never dropped for an outage. Permanent failures come back as results, not errors."""


DEFAULT = ActivityOptions()
