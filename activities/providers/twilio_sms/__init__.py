"""Twilio, both ways: ``send`` creates messages through the SDK with a status callback that
names our message id; ``webhook`` verifies the callbacks and inbound messages Twilio posts back
and reads them into changes and keywords for the delivery service."""

from temporal_journeys.activities.providers.twilio_sms.send import PERMANENT_CODES, TwilioSms
from temporal_journeys.activities.providers.twilio_sms.webhook import (
    EMPTY_TWIML,
    INBOUND_EVENT,
    OPTED_OUT_EVENT,
    SIGNATURE_HEADER,
    Form,
    TwilioInbound,
    TwilioStatus,
    change_for,
    parse_inbound,
    parse_status,
    signed_url,
    verify_signature,
)

__all__ = [
    "EMPTY_TWIML",
    "INBOUND_EVENT",
    "OPTED_OUT_EVENT",
    "PERMANENT_CODES",
    "SIGNATURE_HEADER",
    "Form",
    "TwilioInbound",
    "TwilioSms",
    "TwilioStatus",
    "change_for",
    "parse_inbound",
    "parse_status",
    "signed_url",
    "verify_signature",
]
