"""The embedded default: sends are recorded in the message log and the worker log, not delivered."""

from __future__ import annotations

import logging

from activities.providers.base import OutgoingMessage, Receipt

log = logging.getLogger("journeys.console")


class ConsoleProvider:
    name = "console"
    # Nothing leaves the machine, so repeating an attempt cannot reach a person twice.
    resend_when_unsure = True

    async def send(self, message: OutgoingMessage) -> Receipt:
        log.info(
            "console %s to %s: %s",
            message.channel,
            message.to,
            message.subject or (message.text or "")[:80],
        )
        return Receipt(provider=self.name, provider_message_id=f"console-{message.message_id}")
