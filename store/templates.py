"""Message templates (Liquid sources) by key."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from temporal_journeys.store.models import Template


def get(session: Session, key: str) -> Template | None:
    return session.get(Template, key)


def put(
    session: Session,
    key: str,
    channel: str,
    *,
    subject: str | None = None,
    html: str | None = None,
    text: str | None = None,
    provider_template_id: str | None = None,
    url: str | None = None,
) -> Template:
    template = session.get(Template, key) or Template(key=key)
    template.channel = channel
    template.subject = subject
    template.html = html
    template.text = text
    template.provider_template_id = provider_template_id
    template.url = url
    session.add(template)
    session.flush()
    return template


def keys(session: Session) -> list[str]:
    return list(session.scalars(select(Template.key)))
