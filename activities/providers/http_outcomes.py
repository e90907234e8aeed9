"""What an HTTP status from a provider means for a send: shared by the three providers."""

from __future__ import annotations

import time
from datetime import timedelta

from temporal_journeys.activities.providers.base import (
    NotAccepted,
    OutcomeUnknown,
    PermanentSendError,
)

# Answered by a proxy or load balancer in front of the service, or by the service refusing
# work: the message was not taken. A bare 500 may come after the message was queued.
NOT_TAKEN = frozenset({408, 429, 502, 503, 504})


def seconds_until_epoch(value: str | None, now: float | None = None) -> timedelta | None:
    """A reset header holding epoch seconds (SendGrid ``X-RateLimit-Reset``) as a delay."""
    try:
        reset = float(value) if value else None
    except ValueError:
        return None
    if reset is None:
        return None
    return timedelta(seconds=max(1.0, reset - (time.time() if now is None else now)))


def retry_after(value: str | None) -> timedelta | None:
    """``Retry-After`` in seconds (the HTTP-date form is rare from APIs and ignored)."""
    try:
        return timedelta(seconds=max(1.0, float(value))) if value else None
    except ValueError:
        return None


def raise_for_status(
    provider: str, status: int, detail: str, wait: timedelta | None = None
) -> None:
    """Raise the error that ``status`` (an answer of 300 or more) stands for."""
    where = f"{provider} answered {status}: {detail}".rstrip(": ")
    if status in NOT_TAKEN:
        raise NotAccepted(where, retry_after=wait if status == 429 else None)
    if status >= 500:
        raise OutcomeUnknown(where)
    raise PermanentSendError(where)
