"""Message templates (Liquid)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import AdminKey, SessionDep
from api.errors import NotFound
from api.schemas import TemplateBody, TemplateOut
from journeys.graph import Problem
from journeys.rendering import RenderError, check_syntax
from journeys.validation import SpecInvalid
from store import templates as templates_store
from store.models import Template

router = APIRouter(prefix="/v1/templates", tags=["templates"], dependencies=[AdminKey])


def _out(template: Template) -> TemplateOut:
    return TemplateOut(
        key=template.key,
        channel=template.channel,
        subject=template.subject,
        html=template.html,
        text=template.text,
        provider_template_id=template.provider_template_id,
        url=template.url,
        updated_at=template.updated_at,
    )


@router.put("/{key}")
def put_template(key: str, body: TemplateBody, session: SessionDep) -> TemplateOut:
    """Create or replace a template; Liquid syntax is checked before it is stored."""
    problems = []
    if body.channel == "webhook" and not body.url:
        problems.append(Problem("$.url", "a webhook template needs a url"))
    for part in ("subject", "html", "text", "url"):
        try:
            check_syntax(getattr(body, part))
        except RenderError as exc:
            problems.append(Problem(f"$.{part}", str(exc)))
    if problems:
        raise SpecInvalid(problems)
    return _out(templates_store.put(session, key, **body.model_dump()))


@router.get("/{key}")
def get_template(key: str, session: SessionDep) -> TemplateOut:
    """One template."""
    template = session.get(Template, key)
    if template is None:
        raise NotFound(f"template {key!r}")
    return _out(template)
