"""Firebase Cloud Messaging (HTTP v1): ``send`` calls ``messages:send`` once per device token
with an OAuth2 token from the service-account file; ``errors`` maps FCM's error answers."""

from temporal_journeys.activities.providers.fcm_push.errors import FcmError, Verdict, parse_error
from temporal_journeys.activities.providers.fcm_push.send import (
    MESSAGE_ID_KEY,
    SCOPE,
    FcmPush,
    fcm_message,
)

__all__ = [
    "MESSAGE_ID_KEY",
    "SCOPE",
    "FcmError",
    "FcmPush",
    "Verdict",
    "fcm_message",
    "parse_error",
]
