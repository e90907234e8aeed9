"""Push devices: the app registers its FCM registration token for the signed-in user (tracking
key, as identify), and removes it on sign-out; admins list a contact's devices."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from temporal_journeys.api.deps import AdminKey, SessionDep, SettingsDep, TrackKey
from temporal_journeys.api.schemas import DeviceIn, DeviceOut
from temporal_journeys.api.services import devices

router = APIRouter(prefix="/v1/devices", tags=["devices"])

UserId = Annotated[str, Query(min_length=1, max_length=200)]


@router.post("", dependencies=[TrackKey])
def register_device(
    body: DeviceIn, session: SessionDep, settings: SettingsDep, response: Response
) -> DeviceOut:
    """Register a device for push (201), or refresh or move one registered before (200): a
    token names one install, so it belongs to the user who registered it last. A browser
    registers its web push subscription (platform ``webpush``); its endpoint is its token."""
    out, changed = devices.register(session, body, settings)
    response.status_code = 201 if changed else 200
    return out


# ``:path``: a web push subscription's token is its endpoint URL, slashes and all.
@router.delete("/{token:path}", status_code=204, dependencies=[TrackKey])
def unregister_device(token: str, userId: UserId, session: SessionDep) -> Response:  # noqa: N803
    """Remove the user's device (they signed out on it); 404 if it is not theirs."""
    devices.unregister(session, userId, token)
    return Response(status_code=204)


@router.get("", dependencies=[AdminKey])
def list_devices(userId: UserId, session: SessionDep) -> list[DeviceOut]:  # noqa: N803
    """A contact's devices, most recently registered first."""
    return devices.of_contact(session, userId)
