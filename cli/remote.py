"""Journeys as code against a running API: diff the files with what is published, apply them,
enrol contacts in bulk, find a contact's runs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from temporal_journeys.cli.documents import TopicFile, file_kind, parse_broadcast, topic_file
from temporal_journeys.journeys.segments import (
    Segment,
    in_dependency_order,
    is_segment_document,
    parse_segment,
)
from temporal_journeys.journeys.spec import EnterStep, Journey
from temporal_journeys.journeys.specdiff import diff
from temporal_journeys.journeys.validation import load_document, parse_journey
from temporal_journeys.workflows import search_attributes as sa
from temporal_journeys.workflows.starter import parse_workflow_id


class RemoteError(RuntimeError):
    pass


@dataclass
class Change:
    path: Path
    key: str
    lines: list[str] = field(default_factory=list)
    version: int | None = None
    kind: str = "journey"
    note: str | None = None  # what was done instead of a diff (a broadcast file: nothing)


def published(http: httpx.Client, key: str) -> Journey | None:
    response = http.get(f"/v1/journeys/{key}/versions")
    if response.status_code == 404:
        return None
    _check(response)
    versions = response.json()
    return Journey.model_validate(versions[-1]["spec"]) if versions else None


def _segment_file(path: Path) -> Segment | None:
    document = load_document(path.read_text())
    return parse_segment(document) if is_segment_document(document) else None


def plan_segment(http: httpx.Client, path: Path, segment: Segment) -> Change:
    """A segment file against the stored segment: its definition, line by line."""
    response = http.get(f"/v1/segments/{segment.key}")
    local = segment.model_dump(mode="json")
    if response.status_code == 404:
        return Change(path, segment.key, [f"new segment {segment.key}"], kind="segment")
    _check(response)
    stored = response.json()["definition"]
    lines = [
        f"{name}: {json.dumps(stored.get(name))} -> {json.dumps(local.get(name))}"
        for name in sorted(set(stored) | set(local))
        if stored.get(name) != local.get(name)
    ]
    return Change(path, segment.key, lines, kind="segment")


def plan_topic(http: httpx.Client, path: Path, found: TopicFile) -> Change:
    """A topic file against the stored topic: each field that differs."""
    response = http.get(f"/v1/topics/{found.key}")
    if response.status_code == 404:
        return Change(path, found.key, [f"new topic {found.key}"], kind="topic")
    _check(response)
    stored, local = response.json(), found.body()
    lines = [
        f"{name}: {json.dumps(stored.get(name))} -> {json.dumps(local.get(name))}"
        for name in sorted(local)
        if stored.get(name) != local.get(name)
    ]
    return Change(path, found.key, lines, kind="topic")


BROADCAST_NOTE = "a broadcast: not applied (`journeys broadcast` sends it)"


def _broadcast_change(path: Path) -> Change:
    document = load_document(path.read_text())
    parse_broadcast(document)  # a bad file is refused here as in `journeys validate`
    key = str(document.get("key", path.stem))
    return Change(path, key, kind="broadcast", note=BROADCAST_NOTE)


def plan(http: httpx.Client, path: Path) -> Change:
    kind = file_kind(path)
    if kind == "segment":
        return plan_segment(http, path, parse_segment(load_document(path.read_text())))
    if kind == "topic":
        return plan_topic(http, path, topic_file(path))
    if kind == "broadcast":
        return _broadcast_change(path)
    journey = parse_journey(path.read_text())
    return Change(path, journey.key, diff(published(http, journey.key), journey))


def apply_topics(
    http: httpx.Client,
    topics: dict[Path, TopicFile],
    *,
    dry_run: bool,
    progress: Callable[[Change], None],
) -> list[Change]:
    """Save topic files (``PUT /v1/topics/{key}``) that are new or changed."""
    changes = []
    for path, found in topics.items():
        change = plan_topic(http, path, found)
        if change.lines and not dry_run:
            _check(http.put(f"/v1/topics/{found.key}", json=found.body()))
        changes.append(change)
        progress(change)
    return changes


def apply_segments(
    http: httpx.Client,
    segments: dict[Path, Segment],
    *,
    dry_run: bool,
    progress: Callable[[Change], None],
) -> list[Change]:
    """Save segment files, each after those it names (the API refuses unknown ones)."""
    changes = []
    by_key = {segment.key: path for path, segment in segments.items()}
    for segment in in_dependency_order(segments.values()):
        path = by_key[segment.key]
        change = plan_segment(http, path, segment)
        if change.lines and not dry_run:
            response = http.put(f"/v1/segments/{segment.key}", json=segment.model_dump(mode="json"))
            _check(response)
            change.version = response.json()["version"]
        changes.append(change)
        progress(change)
    return changes


def apply(
    http: httpx.Client,
    paths: list[Path],
    *,
    dry_run: bool = False,
    migrate: dict[str, str] | None = None,
    progress: Callable[[Change], None] = lambda _: None,
) -> list[Change]:
    """Save each file as the draft and publish it when it differs from the live version.
    A journey that another one enters goes first, so the API knows it when it checks the
    other's `enter` step. Topic files, then segment files, go before every journey, which may
    name them (the API refuses a send on an unknown topic). Broadcast files are reported and
    left alone: applying a file must not send a message to a whole segment."""
    kinds = {path: file_kind(path) for path in paths}
    topics = {path: topic_file(path) for path in paths if kinds[path] == "topic"}
    changes = apply_topics(http, topics, dry_run=dry_run, progress=progress)
    segments = {path: segment for path in paths if (segment := _segment_file(path)) is not None}
    changes += apply_segments(http, segments, dry_run=dry_run, progress=progress)
    for path in paths:
        if kinds[path] == "broadcast":
            changes.append(_broadcast_change(path))
            progress(changes[-1])
    paths = [path for path in paths if kinds[path] == "journey"]
    for path in entered_first(paths):
        change = plan(http, path)
        if change.lines and not dry_run:
            document = parse_journey(path.read_text()).model_dump(mode="json")
            _check(http.put(f"/v1/journeys/{change.key}", json=document))
            body = {"migrate": {"steps": migrate}} if migrate else None
            response = http.post(f"/v1/journeys/{change.key}/publish", json=body)
            _check(response)
            change.version = response.json()["version"]
        changes.append(change)
        progress(change)
    return changes


def entered_first(paths: list[Path]) -> list[Path]:
    """``paths`` in their order, except that each file comes after those its ``enter`` steps
    name (a loop of hand-offs keeps the given order)."""
    journeys = {path: parse_journey(path.read_text()) for path in paths}
    by_key = {journey.key: path for path, journey in journeys.items()}
    ordered: list[Path] = []
    visiting: set[Path] = set()

    def visit(path: Path) -> None:
        if path in ordered or path in visiting:
            return
        visiting.add(path)
        for step in journeys[path].steps:
            if isinstance(step, EnterStep) and step.enter.journey in by_key:
                visit(by_key[step.enter.journey])
        ordered.append(path)

    for path in paths:
        visit(path)
    return ordered


ENROLL_CHUNK = 1000  # the most userIds POST /v1/journeys/{key}/enroll takes in one body


def enroll(
    http: httpx.Client,
    key: str,
    user_ids: list[str],
    *,
    properties: dict[str, Any] | None = None,
    chunk: int = ENROLL_CHUNK,
    progress: Callable[[list[dict[str, Any]]], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """Put contacts into the live version of ``key`` through the enroll API, ``chunk`` at a
    time; one result per contact (``userId`` with ``workflow_id`` or ``error``). Enrolling a
    contact whose run is alive reaches that run, so a repeated call starts nothing twice."""
    if not 1 <= chunk <= ENROLL_CHUNK:
        raise ValueError(f"chunk must be from 1 to {ENROLL_CHUNK}")
    results: list[dict[str, Any]] = []
    for start in range(0, len(user_ids), chunk):
        body = {"userIds": user_ids[start : start + chunk], "properties": properties or {}}
        response = http.post(f"/v1/journeys/{key}/enroll", json=body)
        _check(response)
        results.extend(response.json())
        progress(response.json())
    return results


DEFAULT_UI_URL = "http://127.0.0.1:8233"  # the dev server's UI, as `journeys dev` starts it


@dataclass(frozen=True)
class Run:
    """One of a contact's runs, as an operator looks for it in the Temporal UI."""

    workflow_id: str
    journey: str
    status: str
    step: str | None
    link: str
    list_filter: str


def runs(
    http: httpx.Client, user_id: str, *, namespace: str, ui_url: str = DEFAULT_UI_URL
) -> list[Run]:
    """A contact's runs from ``GET /v1/contacts/{id}/journeys``. The workflow ids come from
    the enrollments, so they are right whether ids are hashed (encryption on) or not, and the
    list filter is read from them: the contact part of an id is what ``JourneyContactId``
    holds."""
    response = http.get(f"/v1/contacts/{quote(user_id, safe='')}/journeys")
    _check(response)
    base = ui_url.rstrip("/")
    found = []
    for item in response.json():
        workflow_id = item["workflow_id"]
        shown = parse_workflow_id(workflow_id).contact
        found.append(
            Run(
                workflow_id=workflow_id,
                journey=item["journey"],
                status=item["status"],
                step=item.get("step"),
                # The UI takes the id as one path segment: its slashes are escaped.
                link=f"{base}/namespaces/{quote(namespace, safe='')}/workflows/"
                f"{quote(workflow_id, safe='')}",
                list_filter=f'{sa.CONTACT_ID.name} = "{_quoted(shown)}"',
            )
        )
    return found


def _quoted(value: str) -> str:
    # A visibility query's string literal: backslashes and double quotes escaped.
    return value.replace("\\", "\\\\").replace('"', '\\"')


PARKED_PAGE = 1000  # the most GET /v1/outbox/parked answers at once


def parked(http: httpx.Client, *, page: int = PARKED_PAGE) -> Iterator[dict[str, Any]]:
    """Every parked event, oldest first, fetched a page at a time."""
    after = 0
    while True:
        response = http.get("/v1/outbox/parked", params={"after": after, "limit": page})
        _check(response)
        items = response.json()
        yield from items
        if len(items) < page:
            return
        after = items[-1]["id"]


def retry_parked(http: httpx.Client, entry_id: int) -> None:
    _check(http.post(f"/v1/outbox/parked/{entry_id}/retry"))


def drop_parked(http: httpx.Client, entry_id: int) -> None:
    _check(http.delete(f"/v1/outbox/parked/{entry_id}"))


def _check(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise RemoteError(
            f"{response.request.method} {response.request.url.path}: "
            f"HTTP {response.status_code}: {response.text[:500]}"
        )
