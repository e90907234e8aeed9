"""WhatsApp through Twilio's Messages API: the SMS provider's client, threads and error
handling (``twilio_sms.TwilioSms``), with ``whatsapp:`` addresses, its own status callback, and
either a free-form body or an approved content template.

WhatsApp lets a business send free-form text only within 24 hours of the contact's last message
to it (the customer service window); outside it only approved templates. A template with a
``provider_template_id`` (a Twilio Content SID, ``HX...``) is sent as ``ContentSid`` with
``ContentVariables`` (JSON); the send activity picks it whenever the window is closed (or the
template has no text) and refuses a free-form-only template outside the window.
"""

from __future__ import annotations

import json

from temporal_journeys.activities.providers.base import OutgoingMessage
from temporal_journeys.activities.providers.threads import CallThreads
from temporal_journeys.activities.providers.twilio_sms import PERMANENT_CODES, TwilioSms
from temporal_journeys.journeys.settings import Settings

PREFIX = "whatsapp:"
STATUS_PATH = "/v1/webhooks/twilio/whatsapp/status"

# Twilio's WhatsApp error codes that no retry will change, besides the SMS ones.
WHATSAPP_PERMANENT_CODES = {
    **PERMANENT_CODES,
    63003: "the 'To' number is not on WhatsApp",
    63016: "outside the 24-hour window only a content template may be sent",
    63024: "invalid message recipient",
}


def whatsapp_address(phone: str) -> str:
    return phone if phone.startswith(PREFIX) else PREFIX + phone


class TwilioWhatsApp(TwilioSms):
    name = "twilio-whatsapp"
    permanent_codes = WHATSAPP_PERMANENT_CODES

    def __init__(self, settings: Settings) -> None:
        # Not the SMS check: a WhatsApp sender works without an SMS number.
        assert settings.has_whatsapp, "TwilioWhatsApp needs twilio_whatsapp_from_number"
        self._settings = settings
        self._threads = CallThreads(self.name, settings.provider_concurrency)

    def status_callback(self, message_id: str) -> str:
        base = self._settings.public_url.rstrip("/")
        return f"{base}{STATUS_PATH}?message_id={message_id}"

    def message_fields(self, message: OutgoingMessage) -> dict[str, str]:
        fields = {
            "to": whatsapp_address(message.to or ""),
            "from_": whatsapp_address(self._settings.twilio_whatsapp_from_number or ""),
        }
        if message.provider_template_id:
            fields["content_sid"] = message.provider_template_id
            if message.variables:
                fields["content_variables"] = json.dumps(dict(message.variables))
        else:
            fields["body"] = message.text or ""
        return fields
