"""Mobile push through Firebase Cloud Messaging's HTTP v1 API, one message per device token.

Authentication is an OAuth2 access token for the service account in
``settings.fcm_service_account_file``, obtained by ``google-auth`` (the library Google's own
SDKs use) from the file's ``token_uri`` with a signed JWT assertion, cached until it expires
and refreshed once when FCM answers 401. The API host is ``settings.fcm_base_url``; the tests
point both at a fake on 127.0.0.1.

FCM takes no idempotency key, so the message's ``device_log`` records each device's outcome as
it comes and a retry is given only the devices not called yet (``activities/sends.py``). On
the device itself, ``collapse_key`` / ``tag`` / ``apns-collapse-id`` are the message id: should
a repeat ever reach a phone (a resend after an unknown outcome, when a resend window is set),
it replaces the first notification rather than adding a second.

Calls are blocking (``requests``) and run in this provider's own threads (``threads.py``).
"""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path
from typing import Any

import google.auth.exceptions
import requests
from google.auth.transport.requests import Request
from google.oauth2 import service_account
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from temporal_journeys.activities.providers.base import (
    BeforeCall,
    Device,
    NotAccepted,
    OutcomeUnknown,
    OutgoingMessage,
    PermanentSendError,
    Receipt,
    nothing_to_mark,
)
from temporal_journeys.activities.providers.fcm_push.errors import FcmError, Verdict, parse_error
from temporal_journeys.activities.providers.http_outcomes import retry_after
from temporal_journeys.activities.providers.threads import CallThreads
from temporal_journeys.journeys.settings import Settings

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
MESSAGE_ID_KEY = "journeys_message_id"
"""The data key carrying our message id to the app, which posts ``push.opened`` with it."""


def fcm_message(message: OutgoingMessage, device: Device) -> dict[str, Any]:
    """The ``message`` object of one ``messages:send`` call (FCM v1 ``Message``)."""
    notification = {
        key: value for key, value in (("title", message.subject), ("body", message.text)) if value
    }
    # Data values must be strings; the app reads the id back from here for ``push.opened``.
    data = {MESSAGE_ID_KEY: message.message_id}
    if message.url:
        data["link"] = message.url
    body: dict[str, Any] = {"token": device.token, "notification": notification, "data": data}
    # The platform's own "same notification" key: a repeat replaces instead of adding.
    if device.platform == "android":
        body["android"] = {
            "collapse_key": message.message_id,
            "notification": {"tag": message.message_id},
        }
    elif device.platform == "ios":
        body["apns"] = {"headers": {"apns-collapse-id": message.message_id[:64]}}
    elif device.platform == "web":
        body["webpush"] = {"notification": {"tag": message.message_id}}
    return body


def _never_connected(error: requests.ConnectionError) -> bool:
    """Whether a connection error happened before the request was written."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


class FcmPush:
    name = "fcm"
    # No idempotency key: an attempt whose outcome is unknown is not repeated.
    resend_when_unsure = False
    # FCM reports nothing back by webhook; the app posts ``push.opened`` itself.
    confirmed_by_webhook = False

    def __init__(self, settings: Settings) -> None:
        assert settings.fcm_service_account_file, "FcmPush needs fcm_service_account_file"
        path = Path(settings.fcm_service_account_file)
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"JOURNEYS_FCM_SERVICE_ACCOUNT_FILE: cannot read {path}: {exc}"
            ) from exc
        project = settings.fcm_project_id or info.get("project_id")
        if not project:
            raise ValueError(f"{path} has no project_id: set JOURNEYS_FCM_PROJECT_ID")
        self._credentials = service_account.Credentials.from_service_account_info(
            info, scopes=[SCOPE]
        )
        self._url = f"{settings.fcm_base_url.rstrip('/')}/v1/projects/{project}/messages:send"
        self._timeout = settings.provider_timeout_seconds
        # One refresh at a time; the token is shared by every call until it expires.
        self._token_lock = threading.Lock()
        self._threads = CallThreads(self.name, settings.provider_concurrency)

    async def send(
        self, message: OutgoingMessage, before_call: BeforeCall = nothing_to_mark
    ) -> Receipt:
        return await self._threads.call(before_call, lambda: self._send(message))

    # ------------------------------------------------------------ one message, every device

    def _send(self, message: OutgoingMessage) -> Receipt:
        log = message.device_log
        delivered = list(log.earlier) if log is not None else []
        unknown: list[str] = []
        refused: list[str] = []
        with requests.Session() as session:
            for device in message.devices:
                try:
                    name = self._send_one(session, message, device)
                except OutcomeUnknown as exc:
                    unknown.append(str(exc))
                    if log is not None:
                        log.unknown(device.token)
                    continue
                except _DeviceFailed as exc:
                    if log is not None and exc.error.verdict is Verdict.TOKEN_GONE:
                        log.removed(device.token, str(exc.error))
                    elif log is not None:
                        log.refused(device.token, str(exc.error))
                    refused.append(str(exc.error))
                    continue
                except PermanentSendError:
                    if delivered:
                        break  # some devices have it: the message was sent
                    raise
                delivered.append(name)
                if log is not None:
                    log.sent(device.token, name)
        if delivered:
            return Receipt(self.name, delivered[0])
        if unknown:
            raise OutcomeUnknown("; ".join(unknown))
        if refused:
            raise PermanentSendError("no device took it: " + "; ".join(refused))
        raise PermanentSendError("no device token")

    def _send_one(self, session: requests.Session, message: OutgoingMessage, device: Device) -> str:
        """One ``messages:send``: FCM's message name, or the error for this device."""
        body = json.dumps({"message": fcm_message(message, device)}).encode()
        for fresh in (False, True):
            token = self._access_token(session, refresh=fresh)
            response = self._post(session, body, token)
            if response.status_code == 401 and not fresh:
                continue  # expired or revoked early: once more with a new access token
            break
        if response.status_code < 300:
            try:
                return str(response.json()["name"])
            except (ValueError, KeyError, TypeError):
                return ""  # taken; the name only helps the log
        error = parse_error(response.status_code, response.content)
        verdict = error.verdict
        if verdict in (Verdict.TOKEN_GONE, Verdict.DEVICE_REFUSED):
            raise _DeviceFailed(error)
        if verdict is Verdict.NOT_TAKEN:
            raise NotAccepted(str(error), retry_after(response.headers.get("Retry-After")))
        if verdict is Verdict.UNKNOWN:
            raise OutcomeUnknown(str(error))
        raise PermanentSendError(str(error))

    def _post(self, session: requests.Session, body: bytes, token: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        try:
            return session.post(self._url, data=body, headers=headers, timeout=self._timeout)
        except requests.ConnectionError as error:  # includes ConnectTimeout
            if _never_connected(error):
                raise NotAccepted(f"fcm unreachable: {error}") from error
            raise OutcomeUnknown(f"fcm dropped the connection: {error}") from error
        except requests.RequestException as error:  # ReadTimeout and the like
            raise OutcomeUnknown(f"fcm gave no answer: {error!r}") from error

    def _access_token(self, session: requests.Session, refresh: bool) -> str:
        """The cached access token, refreshed when expired (or ``refresh``). Nothing has gone
        to FCM yet, so a failure here is never an unknown outcome."""
        with self._token_lock:
            credentials = self._credentials
            if refresh or not credentials.valid:
                request = functools.partial(Request(session), timeout=self._timeout)
                try:
                    credentials.refresh(request)
                except google.auth.exceptions.RefreshError as exc:
                    if getattr(exc, "retryable", False):
                        raise NotAccepted(f"fcm access token: {exc}") from exc
                    raise PermanentSendError(
                        f"fcm access token refused for {credentials.service_account_email}: {exc}"
                    ) from exc
                except google.auth.exceptions.TransportError as exc:
                    raise NotAccepted(
                        f"fcm access token: token endpoint unreachable: {exc}"
                    ) from exc
            return str(credentials.token)


class _DeviceFailed(Exception):
    """This device cannot get the message (its token dead or refused); the others may."""

    def __init__(self, error: FcmError) -> None:
        super().__init__(str(error))
        self.error = error
