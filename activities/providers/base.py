"""The interface every channel provider implements, and the three ways a send can fail.

A provider call ends in one of four ways, and the send activity acts on which one it was
(docs/channels.md, "Exactly once"):

- a ``Receipt``: the provider took the message;
- ``PermanentSendError``: refused for good (bad address, rejected content, bad credentials);
- ``NotAccepted``: the provider certainly did not take it (connection refused, 429, 502/503/504
  answered), so calling again cannot make a second message;
- ``OutcomeUnknown``: the request may have been taken (read timeout after it went out, 500,
  connection dropped mid-answer); calling again might make a second message.

Each call is preceded by ``before_call``, run immediately before the request goes out (for the
SDK providers, in the thread that makes it): the send activity marks the message ``sending``
there, so a message waiting for a free thread is never taken for one whose call may have
happened. ``before_call`` raises ``AlreadySettled`` when the message needs no call any more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol


@dataclass(frozen=True)
class Device:
    """A push channel's address: one device's registration token and its platform; for a
    browser's web push subscription (platform ``webpush``) the token is the endpoint and
    ``keys`` its (p256dh, auth)."""

    token: str
    platform: str
    keys: tuple[str, str] | None = None


class DeviceLog(Protocol):
    """Where a push provider records each device's outcome as it goes (``store/devices.py``
    behind it), so a retry calls only the devices not called yet: FCM takes no idempotency
    key, and one message goes out as one call per device."""

    earlier: tuple[str, ...]
    """Provider ids of earlier attempts' calls that reached a device."""

    def sent(self, token: str, provider_message_id: str) -> None: ...

    def unknown(self, token: str) -> None: ...

    def refused(self, token: str, reason: str) -> None: ...

    def removed(self, token: str, reason: str) -> None: ...


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: str
    channel: str
    to: str | None
    subject: str | None
    html: str | None
    text: str | None
    headers: dict[str, str] = field(default_factory=dict)
    contact_id: str | None = None
    url: str | None = None
    """Webhook channel: the rendered URL to post to."""
    provider_template_id: str | None = None
    """A template hosted by the provider (SendGrid dynamic template): send its id and
    ``context`` instead of rendered content."""
    context: Mapping[str, Any] = field(default_factory=dict)
    """What the template was rendered with: contact, event, data, message."""
    topic: str | None = None
    """The subscription topic: the email's one-click unsubscribe leaves this topic only."""
    devices: tuple[Device, ...] = ()
    """Push channel: the devices still to call (those an earlier attempt called are left out)."""
    device_log: DeviceLog | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    """WhatsApp content template (``provider_template_id``, a Content SID): its variables."""
    """Push channel: where each device's outcome is recorded as the send goes."""


@dataclass(frozen=True)
class Receipt:
    provider: str
    provider_message_id: str


class PermanentSendError(Exception):
    """The provider refused the message for good (bad address, rejected content)."""


class NotAccepted(Exception):
    """The provider certainly did not take the message; a later attempt may call again."""

    def __init__(self, reason: str, retry_after: timedelta | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        """When the provider said to come back (429 reset headers); None: the usual backoff."""


class OutcomeUnknown(Exception):
    """The request may have reached the provider and been accepted; nobody can tell."""


class AlreadySettled(Exception):
    """Raised by ``before_call``: since the send was prepared, something else settled the
    message (a delivery webhook confirmed it, another attempt took it), so no call is made."""


BeforeCall = Callable[[], None]


def nothing_to_mark() -> None:
    """The ``before_call`` of a send that keeps no log (a provider tried on its own)."""


class Provider(Protocol):
    name: str
    resend_when_unsure: bool
    """Whether a retry may call the provider again after an attempt whose outcome is unknown."""
    confirmed_by_webhook: bool
    """Whether a delivery webhook is configured that reports every message this provider
    took: then an unknown outcome left unconfirmed for a while can be sent again."""

    async def send(
        self, message: OutgoingMessage, before_call: BeforeCall = nothing_to_mark
    ) -> Receipt: ...
