"""The embedded default: sends are recorded in the message log and the worker log, not delivered."""

from __future__ import annotations

import asyncio
import logging

from temporal_journeys.activities.providers.base import (
    BeforeCall,
    OutgoingMessage,
    Receipt,
    nothing_to_mark,
)

log = logging.getLogger("journeys.console")


class ConsoleProvider:
    name = "console"
    # Nothing leaves the machine, so repeating an attempt cannot reach a person twice.
    resend_when_unsure = True
    confirmed_by_webhook = False

    async def send(
        self, message: OutgoingMessage, before_call: BeforeCall = nothing_to_mark
    ) -> Receipt:
        await asyncio.to_thread(before_call)
        # Who and what by reference (the message log has the rest): logs are kept and shipped
        # further than the database, so no address and no body, which templates fill with the
        # contact's details.
        log.info(
            "console %s %s to contact %s: %s",
            message.channel,
            message.message_id,
            message.contact_id,
            f"subject {message.subject!r}" if message.subject else "no subject",
        )
        return Receipt(provider=self.name, provider_message_id=f"console-{message.message_id}")
