"""Send guards: an ordered policy of small rules that may stop or hold a send.

Each rule looks at one thing (an address, consent, suppression, quiet hours, a frequency cap)
and answers ``None`` (no objection) or a ``Verdict``: ``skipped`` (never sent, the reason goes
in the trace) or ``deferred`` (the workflow waits on a timer until ``until`` and asks again with
the same message id). The first objection wins, so rules that skip for good come before rules
that only hold a send: nobody waits out quiet hours to be told they unsubscribed.

The send activity applies ``POLICY`` in its prepare transaction with the contact row locked, so
two journeys sending to one contact at once cannot both pass a cap.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import ClassVar, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from journeys.settings import Settings
from journeys.timing import quiet_until
from store import messages as messages_store
from store.models import Contact, Message

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
DAY = timedelta(hours=24)


@dataclass(frozen=True)
class Verdict:
    status: Literal["skipped", "deferred"]
    reason: str
    until: datetime | None = None


@dataclass(frozen=True)
class SendContext:
    """What the rules see: one send, with the contact row locked for the transaction."""

    session: Session
    settings: Settings
    contact: Contact
    channel: str
    address: str | None
    message_id: str
    now: datetime
    if_capped: Literal["defer", "skip"] = "defer"


class SendRule(ABC):
    """One guard. ``channels``: the channels it applies to (None: all)."""

    name: ClassVar[str]
    channels: ClassVar[frozenset[str] | None] = None

    def applies(self, send: SendContext) -> bool:
        return self.channels is None or send.channel in self.channels

    @abstractmethod
    def check(self, send: SendContext) -> Verdict | None: ...


class ValidAddress(SendRule):
    name = "address"
    channels = frozenset({"email", "sms"})

    def check(self, send: SendContext) -> Verdict | None:
        address = send.address
        if send.channel == "email":
            if not address:
                return Verdict("skipped", "no email address")
            if not EMAIL.match(address):
                return Verdict("skipped", f"invalid email address {address!r}")
        if send.channel == "sms":
            if not address:
                return Verdict("skipped", "no phone number")
            if not PHONE.match(address):
                return Verdict("skipped", f"invalid phone number {address!r} (E.164)")
        return None


class Subscribed(SendRule):
    name = "unsubscribed"

    def check(self, send: SendContext) -> Verdict | None:
        if send.channel in (send.contact.unsubscribed or []):
            return Verdict("skipped", f"unsubscribed from {send.channel}")
        return None


class NotSuppressed(SendRule):
    name = "suppression"
    channels = frozenset({"email", "sms"})

    def check(self, send: SendContext) -> Verdict | None:
        if not send.address:
            return None
        reason = messages_store.is_suppressed(send.session, send.channel, send.address)
        return Verdict("skipped", f"suppressed: {reason}") if reason else None


def parse_window(text: str | None) -> tuple[time, time] | None:
    """``"21:00-08:00"`` as (start, end); None or empty for no quiet hours."""
    if not text:
        return None
    start, end = text.split("-")
    return time.fromisoformat(start), time.fromisoformat(end)


class ChannelQuietHours(SendRule):
    """Settings' per-channel quiet hours in the contact's zone (a journey's own quiet hours
    are kept by the workflow before it sends)."""

    name = "quiet_hours"

    def check(self, send: SendContext) -> Verdict | None:
        text = getattr(send.settings, f"{send.channel}_quiet_hours", None)
        window = parse_window(text)
        if window is None:
            return None
        zone = send.contact.timezone or "UTC"
        until = quiet_until(send.now, zone, *window)
        if until is None:
            return None
        return Verdict("deferred", f"quiet hours {text} ({zone}) for {send.channel}", until)


# Messages that went out or may have: from ``sending`` (a call under way, or a crash in one)
# to ``bounced``. Pending, deferred and skipped never reached a provider; ``failed`` was
# refused by it.
_ORDER = messages_store.STATUS_ORDER
COUNTED = list(_ORDER[_ORDER.index("sending") : _ORDER.index("bounced") + 1])


def recent_sends(send: SendContext) -> list[datetime]:
    """``sent_at`` of this contact's messages on this channel in (now - 24 h, now], oldest first."""
    rows = send.session.scalars(
        select(Message.sent_at)
        .where(
            Message.contact_id == send.contact.id,
            Message.channel == send.channel,
            Message.id != send.message_id,
            Message.status.in_(COUNTED),
            Message.sent_at > send.now - DAY,
            Message.sent_at <= send.now,
        )
        .order_by(Message.sent_at)
    )
    return [_aware(moment) for moment in rows if moment is not None]


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; they are stored as UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class FrequencyCap(SendRule):
    """At most ``<channel>_daily_cap`` messages per contact and channel in any 24 hours."""

    name = "frequency_cap"

    def check(self, send: SendContext) -> Verdict | None:
        cap = getattr(send.settings, f"{send.channel}_daily_cap", None)
        if not cap:
            return None
        sent = recent_sends(send)
        if len(sent) < cap:
            return None
        reason = f"frequency cap: {len(sent)} {send.channel} in 24 h (cap {cap})"
        if send.if_capped == "skip":
            return Verdict("skipped", reason)
        # Allowed again once enough of the counted messages are a day old.
        return Verdict("deferred", reason, sent[len(sent) - cap] + DAY)


POLICY: tuple[SendRule, ...] = (
    ValidAddress(),
    Subscribed(),
    NotSuppressed(),
    ChannelQuietHours(),
    FrequencyCap(),
)


def evaluate(send: SendContext, policy: tuple[SendRule, ...] = POLICY) -> Verdict | None:
    """The first objection of ``policy`` to this send, or None when it may go."""
    for rule in policy:
        if rule.applies(send):
            verdict = rule.check(send)
            if verdict is not None:
                return verdict
    return None
