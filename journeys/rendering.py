"""Liquid rendering of message templates with contact traits, trigger properties and step data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from liquid import Environment, StrictDefaultUndefined
from liquid.exceptions import LiquidError

# Strict, so a misspelt variable fails the step instead of sending a hole; `| default: ...`
# still works for traits that some contacts lack.
_ENV = Environment(undefined=StrictDefaultUndefined, autoescape=False)


class RenderError(ValueError):
    """A template that does not parse or refers to something the context lacks."""


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    html: str | None
    text: str | None


def _render(name: str, source: str | None, context: dict[str, Any]) -> str | None:
    if source is None:
        return None
    try:
        return _ENV.from_string(source).render(**context)
    except LiquidError as exc:
        raise RenderError(f"{name}: {exc}".splitlines()[0]) from exc


def render(
    subject: str | None, html: str | None, text: str | None, context: dict[str, Any]
) -> Rendered:
    return Rendered(
        subject=_render("subject", subject, context),
        html=_render("html", html, context),
        text=_render("text", text, context),
    )


def check_syntax(source: str | None) -> None:
    """Parse without rendering, so a template is refused when it is saved, not when sent."""
    if source is None:
        return
    try:
        _ENV.from_string(source)
    except LiquidError as exc:
        raise RenderError(str(exc).splitlines()[0]) from exc
