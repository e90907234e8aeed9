"""Push devices: the app registers each install's FCM token (or the browser its web push
subscription) for its user, and removes it on sign-out. FCM's own verdicts (a token
unregistered) and the push services' (404, 410) remove tokens from the send side."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.orm import Session

from temporal_journeys.activities.providers.web_push import endpoint_problem, host_patterns
from temporal_journeys.api.errors import NotFound
from temporal_journeys.api.schemas import DeviceIn, DeviceOut
from temporal_journeys.journeys.graph import Problem
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.validation import SpecInvalid
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import devices as devices_store

_TOKEN = re.compile(r"^[\x21-\x7e]{1,1024}$")
_SEGMENT_PLATFORMS = {"ios": "ios", "android": "android"}


def from_segment_context(context: dict[str, Any] | None) -> tuple[str, str] | None:
    """The push token Segment's mobile libraries put in every call's ``context.device``
    (``token``, with ``type`` ios or android), as (token, platform); None when there is none
    or it is not one (an identify is never refused for its context)."""
    device = (context or {}).get("device")
    if not isinstance(device, dict):
        return None
    token, kind = device.get("token"), device.get("type")
    platform = _SEGMENT_PLATFORMS.get(kind.lower()) if isinstance(kind, str) else None
    if not isinstance(token, str) or not _TOKEN.match(token) or platform is None:
        return None
    return token, platform


def register(session: Session, body: DeviceIn, settings: Settings) -> tuple[DeviceOut, bool]:
    """Add the token to the contact (created if new), or move it to them; True if it changed."""
    keys = None
    if body.subscription is not None:
        # The worker will POST to this URL: only to a push service (endpoints.py says why).
        problem = endpoint_problem(
            body.subscription.endpoint, host_patterns(settings.webpush_endpoint_hosts)
        )
        if problem is not None:
            raise SpecInvalid([Problem("$.subscription.endpoint", f"the endpoint {problem}")])
        keys = (body.subscription.keys.p256dh, body.subscription.keys.auth)
    contacts_store.lock_or_create(session, body.userId)
    token = body.device_token
    changed = devices_store.register(session, body.userId, token, body.platform, keys)
    session.flush()
    row = devices_store.get(session, token)
    assert row is not None
    return DeviceOut(
        userId=body.userId, token=row.token, platform=row.platform, updated_at=row.updated_at
    ), changed


def of_contact(session: Session, user_id: str) -> list[DeviceOut]:
    return [
        DeviceOut(userId=user_id, token=d.token, platform=d.platform, updated_at=d.updated_at)
        for d in devices_store.of_contact(session, user_id)
    ]


def unregister(session: Session, user_id: str, token: str) -> None:
    if not devices_store.unregister(session, user_id, token):
        raise NotFound(f"a device with this token for contact {user_id!r}")
