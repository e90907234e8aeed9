"""Workflow ids of journey runs, written and read back: ``journey/<key>/<contact>[/<correlation>]``.

Kept apart from the starter so that the payload codec, which the starter uses, can read the
contact out of the id of the run a payload belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote


def workflow_id(journey_key: str, contact_id: str, correlation: str | None = None) -> str:
    """``journey/<key>/<contact>[/<correlation>]``, one per triple: a ``/`` or ``%`` in the
    contact id or the correlation value is percent-encoded, so neither can pass for the
    separator (contact ``u1/c1`` is not contact ``u1`` with cart ``c1``). Ids without those
    characters read as they always did, so running runs and recorded histories keep theirs;
    journey keys hold neither (``Key`` in the spec)."""
    base = f"journey/{journey_key}/{_escaped(contact_id)}"
    return f"{base}/{_escaped(correlation)}" if correlation is not None else base


def _escaped(part: str) -> str:
    # ``%`` first, or the ``%2F`` written for a slash would be escaped again.
    return part.replace("%", "%25").replace("/", "%2F")


@dataclass(frozen=True)
class RunId:
    """A workflow id read back: the journey and the id's contact and correlation parts, as
    runs show them (``RunNames.shown``: the userId itself, or its hash)."""

    journey_key: str
    contact: str
    correlation: str | None = None


def parse_workflow_id(value: str) -> RunId:
    """The inverse of ``workflow_id``; ``ValueError`` names what is not one of ours."""
    prefix, *parts = value.split("/")
    if prefix != "journey" or len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"workflow id {value!r} is not journey/<key>/<contact>[/<correlation>]")
    key, contact, *correlation = parts
    # ``unquote`` undoes exactly what ``_escaped`` wrote: only %25 and %2F appear in a part.
    return RunId(key, unquote(contact), unquote(correlation[0]) if correlation else None)
