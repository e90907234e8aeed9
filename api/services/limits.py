"""Limits on one event at the door: nesting depth, number of keys, bytes of JSON.

Every event is signalled to runs and kept in their buffers, so what Temporal takes bounds what
the API may accept, with room to spare: Temporal refuses payloads over 2 MB and its JSON
encoder gives up near 256 levels of nesting. The defaults (32 levels, 1,000 keys, 32 KiB, the
per-call size Segment's own API takes) are far below both; an event over them is refused with
the field named, before anything is stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic_core import PydanticSerializationError, to_json

from temporal_journeys.api.errors import TooLarge
from temporal_journeys.api.schemas import IdentifyCall, PageCall, TrackCall
from temporal_journeys.journeys.json_shape import shape
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.validation import json_path

Location = tuple[str | int, ...]


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_depth: int
    max_keys: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.max_event_bytes, settings.max_event_depth, settings.max_event_keys)


def _payload(call: Any) -> tuple[str, dict[str, Any]] | None:
    """The part of a call that is stored and sent to runs, with its field name."""
    if isinstance(call, IdentifyCall):
        return "traits", call.traits
    if isinstance(call, TrackCall | PageCall):
        return "properties", call.properties
    return None  # group and alias calls are not stored


def check(calls: Sequence[Any], limits: Limits, within: Location = ()) -> None:
    """Raise for the calls over a limit: ``TooLarge`` (413) at the first too many bytes, a
    validation error (422) naming every call too deep or with too many keys. ``within`` is where
    the calls are in the body (``("batch",)``: each call's path gets its index)."""
    problems = []
    for index, call in enumerate(calls):
        found = _payload(call)
        if found is not None:
            field, value = found
            where = (*within, index, field) if within else (field,)
            problems += _problems(where, value, limits)
    if problems:
        raise RequestValidationError(problems)


def check_one(where: Location, value: dict[str, Any], limits: Limits) -> None:
    """The same for one event's properties that are not a call (the enroll API's)."""
    problems = _problems(where, value, limits)
    if problems:
        raise RequestValidationError(problems)


def _problems(where: Location, value: dict[str, Any], limits: Limits) -> list[dict[str, Any]]:
    # Read field by field: ``dataclasses.astuple`` deep-copies, a tenth of the ingest's time.
    measured = shape(value)
    depth, keys = measured.depth, measured.keys
    message = None
    if depth > limits.max_depth:
        message = f"nested {depth} deep, at most {limits.max_depth}"
    elif keys > limits.max_keys:
        message = f"{keys} keys, at most {limits.max_keys}"
    if message is not None:
        return [{"type": "event_limit", "loc": ("body", *where), "msg": message}]
    # Measured only once the depth is known to be small: encoding is recursive. pydantic's
    # encoder writes the same compact UTF-8 as ``json.dumps(..., ensure_ascii=False)``, about
    # eight times faster (every call of every batch is measured).
    try:
        size = len(to_json(value))
    except PydanticSerializationError:
        # Text JSON can carry but UTF-8 cannot (a lone surrogate, from ``\ud800``).
        message = "holds text that is not valid Unicode (a lone surrogate)"
        return [{"type": "event_limit", "loc": ("body", *where), "msg": message}]
    if size > limits.max_bytes:
        raise TooLarge(f"{json_path(where)}: {size} bytes of JSON, at most {limits.max_bytes}")
    return []
