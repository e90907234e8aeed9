"""The console provider logs that it sent, not to whom: no addresses in logs.

Issue 14, item 11: it logged the recipient's address or phone number on every send."""

from __future__ import annotations

import logging

import pytest

from temporal_journeys.activities.providers.base import OutgoingMessage
from temporal_journeys.activities.providers.console import ConsoleProvider


@pytest.mark.parametrize(
    ("channel", "to"), [("email", "ada.lovelace@example.com"), ("sms", "+15550104242")]
)
async def test_a_console_send_logs_the_message_not_the_address(
    caplog: pytest.LogCaptureFixture, channel: str, to: str
):
    message = OutgoingMessage(
        message_id="m-42",
        channel=channel,
        to=to,
        subject="Your cart",
        html=None,
        text=f"Hello {to}",
        contact_id="ada",
    )

    with caplog.at_level(logging.INFO, logger="journeys.console"):
        receipt = await ConsoleProvider().send(message)

    assert receipt.provider_message_id == "console-m-42"
    assert "m-42" in caplog.text and "ada" in caplog.text
    assert to not in caplog.text
    assert to.split("@")[0] not in caplog.text
