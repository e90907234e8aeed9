"""What an FCM HTTP v1 error answer means for one device and for the message.

FCM answers errors as Google APIs do (``{"error": {"code", "message", "status", "details"}}``);
the ``details`` carry ``google.firebase.fcm.v1.FcmError`` with FCM's own ``errorCode`` and, for
a bad request, ``google.rpc.BadRequest`` naming the field at fault. The mapping follows
https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode:

- ``UNREGISTERED`` (404), and ``INVALID_ARGUMENT`` (400) when the field at fault is the token:
  the token is dead; it is removed and the other devices still get the message.
- ``SENDER_ID_MISMATCH`` (403), ``THIRD_PARTY_AUTH_ERROR`` (401: the APNs or web push
  credentials in the Firebase project): this device cannot get it; others may.
- ``QUOTA_EXCEEDED`` (429) and ``UNAVAILABLE`` (503): not taken, retried when ``Retry-After``
  says (else the usual backoff); so are 408, 502 and 504.
- ``INTERNAL`` (500) and other 5xx: FCM may have taken it (outcome unknown).
- Anything else 4xx (``INVALID_ARGUMENT`` about the payload, ``PERMISSION_DENIED``, a 401 that a
  fresh access token did not cure): the message cannot go to anybody; a permanent failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from temporal_journeys.activities.providers.http_outcomes import NOT_TAKEN

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
TOKEN_FIELDS = frozenset({"message.token", "token"})


class Verdict(Enum):
    TOKEN_GONE = "token gone"
    """Remove the token; carry on with the other devices."""
    DEVICE_REFUSED = "device refused"
    """This device cannot get it; carry on with the others."""
    NOT_TAKEN = "not taken"
    """Stop; retry the devices not reached later (after ``Retry-After`` when given)."""
    UNKNOWN = "unknown"
    """FCM may have taken it: never call this device again for this message."""
    PERMANENT = "permanent"
    """The message itself is refused: stop."""


@dataclass(frozen=True)
class FcmError:
    status: int
    code: str
    """FCM's ``errorCode`` when it gave one, else the Google API ``status``."""
    message: str
    token_at_fault: bool

    @property
    def verdict(self) -> Verdict:
        if self.code == "UNREGISTERED" or (self.code == "INVALID_ARGUMENT" and self.token_at_fault):
            return Verdict.TOKEN_GONE
        if self.code in ("SENDER_ID_MISMATCH", "THIRD_PARTY_AUTH_ERROR"):
            return Verdict.DEVICE_REFUSED
        if self.code in ("QUOTA_EXCEEDED", "UNAVAILABLE") or self.status in NOT_TAKEN:
            return Verdict.NOT_TAKEN
        if self.status >= 500:
            return Verdict.UNKNOWN
        return Verdict.PERMANENT

    def __str__(self) -> str:
        return f"fcm answered {self.status} {self.code}: {self.message}".rstrip(": ")


def parse_error(status: int, body: bytes) -> FcmError:
    """The error an answer of ``status`` (400 or more) carries; a body that is not Google's
    error document (a proxy's page) is classed by its status alone."""
    try:
        document: Any = json.loads(body or b"{}")
    except ValueError:
        document = {}
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        return FcmError(status, f"HTTP {status}", body[:200].decode(errors="replace"), False)
    code = str(error.get("status") or f"HTTP {status}")
    token_at_fault = False
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        if detail.get("@type") == FCM_ERROR_TYPE and detail.get("errorCode"):
            code = str(detail["errorCode"])
        if detail.get("@type") == BAD_REQUEST_TYPE:
            violations = detail.get("fieldViolations") or []
            token_at_fault = token_at_fault or any(
                isinstance(v, dict) and v.get("field") in TOKEN_FIELDS for v in violations
            )
    # FCM says "The registration token is not a valid FCM registration token" without a
    # field violation in some answers; the token is what is wrong then too.
    text = str(error.get("message") or "")
    if code == "INVALID_ARGUMENT" and "registration token" in text.lower():
        token_at_fault = True
    return FcmError(status, code, text, token_at_fault)
