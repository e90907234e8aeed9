"""SendGrid, both ways: ``send`` posts mail through the SDK with our message id as a custom
arg; ``webhook`` verifies the Signed Event Webhook that reports what became of that mail and
reads it into changes for the delivery service."""

from temporal_journeys.activities.providers.sendgrid_email.send import (
    MESSAGE_ID_ARG,
    SendGridEmail,
    mail_body,
    unsubscribe_headers,
)
from temporal_journeys.activities.providers.sendgrid_email.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SendGridEvent,
    change_for,
    parse_events,
    verify_signature,
)

__all__ = [
    "MESSAGE_ID_ARG",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SendGridEmail",
    "SendGridEvent",
    "change_for",
    "mail_body",
    "parse_events",
    "unsubscribe_headers",
    "verify_signature",
]
