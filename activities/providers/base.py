"""The interface every channel provider implements, and the three ways a send can fail.

A provider call ends in one of four ways, and the send activity acts on which one it was
(docs/channels.md, "Exactly once"):

- a ``Receipt``: the provider took the message;
- ``PermanentSendError``: refused for good (bad address, rejected content, bad credentials);
- ``NotAccepted``: the provider certainly did not take it (connection refused, 429, 502/503/504
  answered), so calling again cannot make a second message;
- ``OutcomeUnknown``: the request may have been taken (read timeout after it went out, 500,
  connection dropped mid-answer); calling again might make a second message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol


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


class Provider(Protocol):
    name: str
    resend_when_unsure: bool
    """Whether a retry may call the provider again after an attempt whose outcome is unknown."""

    async def send(self, message: OutgoingMessage) -> Receipt: ...
