"""The interface every channel provider implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: str
    channel: str
    to: str | None
    subject: str | None
    html: str | None
    text: str | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    provider: str
    provider_message_id: str


class PermanentSendError(Exception):
    """The provider refused the message for good (bad address, rejected content)."""


class Provider(Protocol):
    name: str
    resend_when_unsure: bool
    """Whether a retry may call the provider again after an attempt whose outcome is unknown."""

    async def send(self, message: OutgoingMessage) -> Receipt: ...
