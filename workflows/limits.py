"""Measures of what a run takes in and carries, against the bounds in ``types``: whether an
event nests too deep and how many bytes a value takes on the wire. Pure and deterministic, so
workflow code calls them; the starter checks a trigger with them before a run begins on it."""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json

from temporal_journeys.journeys.json_shape import shape
from temporal_journeys.journeys.records import JourneyEvent
from temporal_journeys.workflows.types import BUFFER_BYTES_LIMIT, EVENT_DEPTH_LIMIT


def too_deep(value: Any) -> bool:
    """Whether ``value`` nests deeper than a run carries (``EVENT_DEPTH_LIMIT``)."""
    return shape(value, stop_deeper_than=EVENT_DEPTH_LIMIT).depth > EVENT_DEPTH_LIMIT


def size_of(value: Any) -> int:
    """Bytes of ``value`` as the pydantic data converter writes it into a payload."""
    return len(to_json(value))


def too_big_to_carry(event: JourneyEvent) -> str | None:
    """Why a run could not carry ``event`` (as its trigger or in its buffer), or None."""
    if too_deep(event.properties):
        return f"properties nested over {EVENT_DEPTH_LIMIT} levels"
    if size_of(event) > BUFFER_BYTES_LIMIT:
        return f"over {BUFFER_BYTES_LIMIT} bytes"
    return None
