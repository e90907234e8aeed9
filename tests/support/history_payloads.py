"""The payloads a workflow history holds, found by walking its protobuf messages."""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload


def payloads(message: Message, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every payload a history event holds, with its path (``details[data].payloads``)."""
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            items = [(f"{path}{field.name}[{key}].", item) for key, item in value.items()]
        else:
            many = [value] if isinstance(value, Message) else list(value)
            items = [(f"{path}{field.name}.", item) for item in many]
        for where, item in items:
            if isinstance(item, Payload):
                yield where.rstrip("."), item
            elif isinstance(item, Message):
                yield from payloads(item, where)


def ours(path: str) -> bool:
    """Payloads our converter wrote. Not: search attributes (the server indexes them; ids in
    them are item 2 of issue 15), and the SDK core's own bookkeeping in markers (a local
    activity's sequence number, type and times; a patch's id), which no codec sees."""
    return not path.startswith(
        (
            "workflow_execution_started_event_attributes.search_attributes",
            "upsert_workflow_search_attributes_event_attributes",
            "marker_recorded_event_attributes.details[data]",
            "marker_recorded_event_attributes.details[patch-data]",
        )
    )
