"""The kinds of file journeys as code reads, told apart and parsed with JSON paths in problems.

A journey file has no ``kind``; a segment has ``kind: segment``; a broadcast (the body of
``POST /v1/broadcasts``, sent by ``journeys broadcast``, never "applied") has
``kind: broadcast``; a subscription topic has ``kind: topic``, or sits in a ``topics/`` folder
(``examples/topics/newsletter.yaml``: ``key``, ``name``, ``description``, ``type``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from temporal_journeys.api.schemas import BroadcastIn
from temporal_journeys.journeys.graph import Problem
from temporal_journeys.journeys.segments import is_segment_document
from temporal_journeys.journeys.topics import TopicIn
from temporal_journeys.journeys.validation import SpecInvalid, json_path, load_document

Kind = Literal["journey", "segment", "topic", "broadcast"]

# As PUT /v1/topics/{key} takes it (api/routes/topics.py).
TOPIC_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
TOPIC_FOLDER = "topics"


def kind_of(path: Path, document: Any) -> Kind:
    if is_segment_document(document):
        return "segment"
    declared = document.get("kind") if isinstance(document, dict) else None
    if declared in ("topic", "broadcast"):
        return declared
    if declared is None and path.parent.name == TOPIC_FOLDER:
        return "topic"
    return "journey"


def file_kind(path: Path) -> Kind:
    """The kind of the file at ``path`` (``SpecInvalid`` if it is not YAML or JSON)."""
    return kind_of(path, load_document(path.read_text()))


@dataclass(frozen=True)
class TopicFile:
    key: str
    topic: TopicIn

    def body(self) -> dict[str, Any]:
        return self.topic.model_dump(mode="json")


def _problems(error: ValidationError) -> SpecInvalid:
    return SpecInvalid([Problem(json_path(e["loc"]), e["msg"]) for e in error.errors()])


def parse_topic(path: Path, document: Any) -> TopicFile:
    """A topic file: its ``key`` (the file's name without one) and the body of
    ``PUT /v1/topics/{key}``; ``SpecInvalid`` naming the path of every problem."""
    if not isinstance(document, dict):
        raise SpecInvalid([Problem("$", "a topic is a mapping with key, name and type")])
    fields = {k: v for k, v in document.items() if k not in ("kind", "key")}
    key = document.get("key", path.stem)
    problems = []
    if not isinstance(key, str) or not TOPIC_KEY.match(key) or len(key) > 100:
        problems.append(
            Problem("$.key", "lower-case letters, digits, '_', '.' and '-', at most 100")
        )
    try:
        topic = TopicIn.model_validate(fields)
    except ValidationError as error:
        problems.extend(_problems(error).problems)
    if problems:
        raise SpecInvalid(problems)
    return TopicFile(key, topic)


def parse_broadcast(document: Any) -> BroadcastIn:
    """A broadcast file: the body of ``POST /v1/broadcasts`` with a ``kind`` and a ``key`` to
    tell it by; ``SpecInvalid`` naming the path of every problem."""
    if not isinstance(document, dict):
        raise SpecInvalid([Problem("$", "a broadcast is a mapping with segment and template")])
    fields = {k: v for k, v in document.items() if k not in ("kind", "key")}
    try:
        return BroadcastIn.model_validate(fields)
    except ValidationError as error:
        raise _problems(error) from error


def topic_file(path: Path) -> TopicFile:
    return parse_topic(path, load_document(path.read_text()))


def broadcast_file(path: Path) -> BroadcastIn:
    return parse_broadcast(load_document(path.read_text()))
