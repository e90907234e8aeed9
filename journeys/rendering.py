"""Liquid rendering of message templates with contact traits, trigger properties and step data.

Templates are user input, so rendering has limits (python-liquid's resource limits, set on the
environment): a runaway loop, a string doubled in a loop or an enormous output stops with a
``RenderError`` in milliseconds instead of taking a worker's memory and time. ``check`` applies
the same limits when a template is saved, with a trial render in which every variable may be
missing, so its own literal loops (``(1..5000)``) run as they will at send time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from liquid import Environment, StrictDefaultUndefined
from liquid.exceptions import LiquidError, ResourceLimitError

LOOP_ITERATION_LIMIT = 1_000
"""Iterations of one loop, times those of the loops around it."""
OUTPUT_LIMIT = 1_000_000
"""Characters one part (subject, html, text, url) may render to."""
LOCAL_NAMESPACE_LIMIT = 1_000_000
"""Bytes the variables a template assigns or captures may hold."""


class _LimitedEnvironment(Environment):
    loop_iteration_limit = LOOP_ITERATION_LIMIT
    output_stream_limit = OUTPUT_LIMIT
    local_namespace_limit = LOCAL_NAMESPACE_LIMIT
    # context_depth_limit keeps the library's default (30 nested includes or renders).


# Strict, so a misspelt variable fails the step instead of sending a hole; `| default: ...`
# still works for traits that some contacts lack.
_ENV = _LimitedEnvironment(undefined=StrictDefaultUndefined, autoescape=False)
# For the trial render at save time: nothing is known about the contact yet, so a missing
# variable is empty rather than an error; only the limits are being tried.
_TRIAL = _LimitedEnvironment(autoescape=False)


class RenderError(ValueError):
    """A template that does not parse, refers to something the context lacks, or exceeds the
    rendering limits."""


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


def check_limits(source: str | None) -> None:
    """A trial render with no data: ``RenderError`` if it exceeds a limit. Other errors are
    left to send time, where the contact's data may well avoid them (a division by a trait)."""
    if source is None:
        return
    try:
        _TRIAL.from_string(source).render()
    except ResourceLimitError as exc:
        raise RenderError(str(exc).splitlines()[0]) from exc
    except LiquidError:
        return
