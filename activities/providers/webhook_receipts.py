"""Delivery receipts for the ``webhook`` channel: a gateway (WeChat, a chat app, an in-house
SMS relay) that received one of our signed webhooks reports what became of the message.

The gateway POSTs JSON to ``/v1/webhooks/gateway``, signed exactly as our webhooks are
(``X-Journeys-Signature: t=<unix seconds>,v1=<hex>``, HMAC-SHA256 with the shared
``JOURNEYS_WEBHOOK_SIGNING_SECRET`` over ``<t>.<raw body>``; docs/channels.md):

    {"message_id": "<the Idempotency-Key we sent>", "status": "delivered" | "read" | "failed",
     "at": "2026-12-01T09:00:00Z", "receipt_id": "<the gateway's own id, optional>",
     "error": "<why it failed, optional>"}

A receipt sent twice is applied once. Each becomes an event journeys can wait for, as an email
open is: ``webhook.delivered``, ``webhook.read``, ``webhook.failed``, naming the message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from temporal_journeys.activities.providers.reports import Change, Malformed, Refused
from temporal_journeys.activities.providers.webhook import SIGNATURE_HEADER, verify
from temporal_journeys.journeys.settings import Settings

# A gateway's clock and ours may differ a little; a replay of an old receipt may not pass.
MAX_AGE_SECONDS = 300

CHANGES: dict[str, Change] = {
    "delivered": Change("delivered", "webhook.delivered"),
    # Read is the webhook channel's open: what a `wait_for` on engagement waits for.
    "read": Change("opened", "webhook.read"),
    "failed": Change("undelivered", "webhook.failed"),
}


class GatewayReceipt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: str = Field(min_length=1, max_length=64)
    status: Literal["delivered", "read", "failed"]
    at: datetime | None = None
    receipt_id: str | None = Field(default=None, min_length=1, max_length=200)
    error: str | None = Field(default=None, max_length=500)

    @property
    def key(self) -> str:
        """What makes a repeat a repeat: the gateway's id, else the message and status."""
        return f"gateway:{self.receipt_id or self.message_id}:{self.status}"

    def when(self, now: datetime) -> datetime:
        if self.at is None:
            return now
        return self.at if self.at.tzinfo else self.at.replace(tzinfo=UTC)


def verify_signature(settings: Settings, header: str | None, body: bytes, now: float) -> None:
    secret = settings.webhook_signing_secret
    if not secret:
        raise Refused(
            "gateway receipts are off: JOURNEYS_WEBHOOK_SIGNING_SECRET is not set, so no "
            "receipt can be shown to come from a gateway we post to"
        )
    if not header:
        raise Refused(f"missing {SIGNATURE_HEADER} header")
    if not verify(secret, header, body, max_age=MAX_AGE_SECONDS, now=now):
        raise Refused(f"{SIGNATURE_HEADER} does not verify (wrong secret, altered or stale)")


def parse_receipt(body: bytes) -> GatewayReceipt:
    try:
        return GatewayReceipt.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"$.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            if error["loc"]
            else error["msg"]
            for error in exc.errors()
        )
        raise Malformed(f"not a gateway receipt: {problems}") from None


def change_for(receipt: GatewayReceipt) -> Change:
    return CHANGES[receipt.status]
