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

from sqlalchemy.orm import Session

from temporal_journeys.journeys import topics
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.timing import quiet_until
from temporal_journeys.store import devices as devices_store
from temporal_journeys.store import messages as messages_store
from temporal_journeys.store import topics as topics_store
from temporal_journeys.store.models import Contact

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
DAY = timedelta(hours=24)


@dataclass(frozen=True)
class Verdict:
    status: Literal["skipped", "deferred"]
    reason: str
    until: datetime | None = None


class Lookups:
    """Where the rules read what the contact row does not hold: here one statement per send
    and question. A batch of sends (a broadcast's page) passes a subclass that answers from
    set-based reads made once for the whole batch, so both apply the same rules."""

    def topic(self, send: SendContext) -> tuple[str | None, bool | None]:
        """(the topic's type or None if it is not defined, the contact's choice or None)."""
        assert send.topic is not None
        return topics_store.type_and_choice(send.session, send.contact.id, send.topic)

    def suppression(self, send: SendContext) -> str | None:
        """Why ``send.address`` is suppressed on its channel, or None."""
        assert send.address is not None
        return messages_store.is_suppressed(send.session, send.channel, send.address)

    def sent_times(self, send: SendContext) -> list[datetime | None]:
        """``sent_at`` of the contact's other counted messages on the channel in the last day."""
        return messages_store.sent_times(
            send.session,
            contact_id=send.contact.id,
            channel=send.channel,
            excluding=send.message_id,
            statuses=COUNTED,
            after=send.now - DAY,
            until=send.now,
        )

    def has_device(self, send: SendContext) -> bool:
        # A retry whose earlier attempt reached some devices has a message out already, even
        # if FCM has unregistered every token since.
        return bool(
            devices_store.of_contact(send.session, send.contact.id)
            or any(
                row.outcome == "sent"
                for row in devices_store.called(send.session, send.message_id).values()
            )
        )


PER_SEND = Lookups()


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
    topic: str | None = None
    lookups: Lookups = PER_SEND


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
    channels = frozenset({"email", "sms", "whatsapp", "push"})

    def check(self, send: SendContext) -> Verdict | None:
        address = send.address
        if send.channel == "email":
            if not address:
                return Verdict("skipped", "no email address")
            if not EMAIL.match(address):
                return Verdict("skipped", f"invalid email address {address!r}")
        if send.channel in ("sms", "whatsapp"):
            if not address:
                return Verdict("skipped", "no phone number")
            if not PHONE.match(address):
                return Verdict("skipped", f"invalid phone number {address!r} (E.164)")
        if send.channel == "push" and not send.lookups.has_device(send):
            return Verdict("skipped", "no push device registered")
        return None


class Subscribed(SendRule):
    name = "unsubscribed"

    def check(self, send: SendContext) -> Verdict | None:
        if send.channel in (send.contact.unsubscribed or []):
            return Verdict("skipped", f"unsubscribed from {send.channel}")
        return None


def topic_verdict(session: Session, contact_id: str, topic: str | None) -> Verdict | None:
    """``skipped`` with the reason when the contact is not subscribed to ``topic`` (their
    choice, else the topic's opt-in/opt-out default); None for no topic or a subscriber.
    Sends apply it through ``TopicSubscribed``."""
    if topic is None:
        return None
    return _topic_verdict(topic, *topics_store.type_and_choice(session, contact_id, topic))


def _topic_verdict(topic: str, topic_type: str | None, choice: bool | None) -> Verdict | None:
    reason = topics.suppression_reason(topic, topic_type, choice)
    return Verdict("skipped", reason) if reason else None


class TopicSubscribed(SendRule):
    """A send naming a topic goes only to the topic's subscribers, on every channel."""

    name = "topic"

    def check(self, send: SendContext) -> Verdict | None:
        if send.topic is None:
            return None
        return _topic_verdict(send.topic, *send.lookups.topic(send))


class NotSuppressed(SendRule):
    name = "suppression"
    channels = frozenset({"email", "sms", "whatsapp"})

    def check(self, send: SendContext) -> Verdict | None:
        if not send.address:
            return None
        reason = send.lookups.suppression(send)
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
# to ``bounced``; and those released by the guards whose call has not begun yet (``pending``
# or ``deferred`` with ``sent_at`` set, which the send activity clears whenever it holds one
# back, so a held message has none and the ``sent_at`` window leaves it out). Skipped never
# reached a provider; ``failed`` was refused by it, or never rendered.
_ORDER = messages_store.STATUS_ORDER
COUNTED = ["pending", "deferred", *_ORDER[_ORDER.index("sending") : _ORDER.index("bounced") + 1]]


def recent_sends(send: SendContext) -> list[datetime]:
    """``sent_at`` of this contact's messages on this channel in (now - 24 h, now], oldest first."""
    return [_aware(moment) for moment in send.lookups.sent_times(send) if moment is not None]


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
    TopicSubscribed(),
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
