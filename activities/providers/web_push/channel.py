"""The ``push`` channel over both kinds of device: FCM registration tokens (the apps, and web
apps using the Firebase JS SDK) and browsers' own web push subscriptions (platform
``webpush``). One push step reaches every device of the contact, whichever service carries it;
the message is sent when any device took it.

Each part is called with only its own devices, one after the other; ``before_call`` (the row
marked ``sending``) runs once, before the first request. Each part records its devices'
outcomes in the message's ``device_log``, so whatever the combined outcome, a retry calls only
the devices no attempt called.
"""

from __future__ import annotations

import dataclasses
import threading

from temporal_journeys.activities.providers.base import (
    BeforeCall,
    Device,
    NotAccepted,
    OutcomeUnknown,
    OutgoingMessage,
    PermanentSendError,
    Provider,
    Receipt,
    nothing_to_mark,
)
from temporal_journeys.activities.providers.web_push.send import PLATFORM

NOT_CONFIGURED = {
    "fcm": "FCM is not configured (JOURNEYS_FCM_SERVICE_ACCOUNT_FILE)",
    PLATFORM: "web push is not configured (JOURNEYS_VAPID_PRIVATE_KEY, JOURNEYS_VAPID_SUBJECT)",
}


def service_of(device: Device) -> str:
    return PLATFORM if device.platform == PLATFORM else "fcm"


class _Once:
    """``before_call`` for the first part's request only."""

    def __init__(self, before_call: BeforeCall) -> None:
        self._before_call, self._lock, self._done = before_call, threading.Lock(), False

    def __call__(self) -> None:
        with self._lock:
            if not self._done:
                self._before_call()  # AlreadySettled propagates: nothing is called
                self._done = True


class PushChannel:
    resend_when_unsure = False
    confirmed_by_webhook = False

    def __init__(self, fcm: Provider | None, webpush: Provider | None) -> None:
        self._parts = {"fcm": fcm, PLATFORM: webpush}
        self.name = "+".join(p.name for p in (fcm, webpush) if p is not None)

    async def send(
        self, message: OutgoingMessage, before_call: BeforeCall = nothing_to_mark
    ) -> Receipt:
        once = _Once(before_call)
        log = message.device_log
        receipts: list[Receipt] = []
        not_accepted: NotAccepted | None = None
        unknown: list[str] = []
        refused: list[str] = []
        for service, provider in self._parts.items():
            devices = tuple(d for d in message.devices if service_of(d) == service)
            if not devices:
                continue
            if provider is None:
                once()  # the row is ``sending`` before any outcome is recorded
                for device in devices:
                    if log is not None:
                        log.refused(device.token, NOT_CONFIGURED[service])
                refused.append(NOT_CONFIGURED[service])
                continue
            part = dataclasses.replace(message, devices=devices)
            try:
                receipts.append(await provider.send(part, once))
            except NotAccepted as exc:
                not_accepted = not_accepted or exc  # the other part still goes now
            except OutcomeUnknown as exc:
                unknown.append(str(exc))
            except PermanentSendError as exc:
                refused.append(str(exc))
        if not_accepted is not None:
            raise not_accepted  # the retry calls only the devices still to call
        if receipts:
            return receipts[0]
        if log is not None and log.earlier:
            return Receipt(self.name, log.earlier[0])
        if unknown:
            raise OutcomeUnknown("; ".join(unknown))
        if refused:
            raise PermanentSendError("; ".join(refused))
        raise PermanentSendError("no device token")
