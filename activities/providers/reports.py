"""What a provider's webhook side hands on to the delivery service: the change one report makes
to a message, or why the request was turned away before anything was read into the database.

Both providers' webhook sides produce these and ``api/services/deliveries.py`` applies them, so
they live here, below both."""

from __future__ import annotations

from dataclasses import dataclass


class Refused(Exception):
    """The request cannot be shown to come from the provider (401)."""


class Malformed(ValueError):
    """A verified request whose body is not what the provider sends (400)."""


@dataclass(frozen=True)
class Change:
    """What one provider event does to a message: its new status, the event journeys see,
    and whether the address must never be mailed again."""

    status: str
    event: str | None
    suppress: str | None = None
