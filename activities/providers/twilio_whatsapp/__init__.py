"""WhatsApp through Twilio: ``send`` is the SMS provider with ``whatsapp:`` addresses and
content templates; ``webhook`` maps WhatsApp's statuses (``read`` among them) and inbound
messages, which Twilio signs and shapes as for SMS."""

from temporal_journeys.activities.providers.twilio_whatsapp.send import (
    PREFIX,
    STATUS_PATH,
    WHATSAPP_PERMANENT_CODES,
    TwilioWhatsApp,
    whatsapp_address,
)
from temporal_journeys.activities.providers.twilio_whatsapp.webhook import (
    INBOUND_EVENT,
    OPTED_OUT_EVENT,
    change_for,
    phone_of,
)

__all__ = [
    "INBOUND_EVENT",
    "OPTED_OUT_EVENT",
    "PREFIX",
    "STATUS_PATH",
    "WHATSAPP_PERMANENT_CODES",
    "TwilioWhatsApp",
    "change_for",
    "phone_of",
    "whatsapp_address",
]
