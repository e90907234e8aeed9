"""WhatsApp's side of Twilio's webhooks. Status callbacks and inbound messages are signed and
shaped as for SMS (``twilio_sms.webhook`` verifies and reads them); what differs is what each
status means (WhatsApp reports ``read``) and the events journeys see."""

from __future__ import annotations

from temporal_journeys.activities.providers.reports import Change
from temporal_journeys.activities.providers.twilio_sms import TwilioStatus
from temporal_journeys.activities.providers.twilio_whatsapp.send import PREFIX

INBOUND_EVENT = "whatsapp.inbound"
OPTED_OUT_EVENT = "whatsapp.unsubscribed"

CHANGES: dict[str, Change] = {
    "sent": Change("sent", None),
    "delivered": Change("delivered", "whatsapp.delivered"),
    "read": Change("opened", "whatsapp.read"),
    "undelivered": Change("undelivered", "whatsapp.failed"),
    "failed": Change("undelivered", "whatsapp.failed"),
}


def change_for(update: TwilioStatus) -> Change | None:
    """What a WhatsApp status does to its message; None for queued, sending, ..."""
    return CHANGES.get(update.status)


def phone_of(sender: str) -> str | None:
    """The E.164 number of a ``whatsapp:+...`` sender; None for an SMS sender."""
    return sender[len(PREFIX) :] if sender.startswith(PREFIX) else None
