"""Web push (RFC 8030/8291/8292) through ``pywebpush``: ``send`` posts one encrypted,
VAPID-signed message per browser subscription; ``channel`` joins it with FCM behind the
``push`` channel; ``endpoints`` says which push services may be posted to."""

from temporal_journeys.activities.providers.web_push.channel import PushChannel
from temporal_journeys.activities.providers.web_push.endpoints import (
    endpoint_problem,
    host_patterns,
)
from temporal_journeys.activities.providers.web_push.send import (
    PLATFORM,
    WebPush,
    load_vapid,
    payload,
    public_key,
    topic,
)

__all__ = [
    "PLATFORM",
    "PushChannel",
    "WebPush",
    "endpoint_problem",
    "host_patterns",
    "load_vapid",
    "payload",
    "public_key",
    "topic",
]
