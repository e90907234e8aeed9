"""Message templates (Liquid): stored, read, previewed and test-sent."""

from __future__ import annotations

from fastapi import APIRouter

from temporal_journeys.api.deps import AdminKey, DbDep, ProvidersDep, SessionDep
from temporal_journeys.api.schemas import (
    MessageOut,
    PreviewBody,
    PreviewOut,
    SendTestBody,
    TemplateBody,
    TemplateOut,
)
from temporal_journeys.api.services import templates

router = APIRouter(prefix="/v1/templates", tags=["templates"], dependencies=[AdminKey])


@router.put("/{key}")
def put_template(key: str, body: TemplateBody, session: SessionDep) -> TemplateOut:
    """Create or replace a template; Liquid syntax is checked before it is stored."""
    return templates.put(session, key, body)


@router.get("/{key}")
def get_template(key: str, session: SessionDep) -> TemplateOut:
    """One template."""
    return templates.get(session, key)


@router.post("/{key}/preview")
def preview_template(
    key: str, body: PreviewBody, session: SessionDep, providers: ProvidersDep
) -> PreviewOut:
    """Render for a stored contact (`contact`) or sample `traits`, with `data` and `event`,
    without sending; 422 names the part, line and variable that did not render."""
    return templates.preview(session, providers, key, body)


@router.post("/{key}/test-send")
async def test_send_template(
    key: str, body: SendTestBody, db: DbDep, providers: ProvidersDep
) -> MessageOut:
    """Send once to `to` through the channel's provider, marked as a test: in the message log,
    out of stats and frequency caps. 502 when the provider does not take it."""
    return await templates.send_test(db, providers, key, body)
