"""Journeys as code against a running API: diff the files with what is published, apply them,
enrol contacts in bulk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from journeys.spec import EnterStep, Journey
from journeys.specdiff import diff
from journeys.validation import parse_journey


class RemoteError(RuntimeError):
    pass


@dataclass
class Change:
    path: Path
    key: str
    lines: list[str] = field(default_factory=list)
    version: int | None = None


def published(http: httpx.Client, key: str) -> Journey | None:
    response = http.get(f"/v1/journeys/{key}/versions")
    if response.status_code == 404:
        return None
    _check(response)
    versions = response.json()
    return Journey.model_validate(versions[-1]["spec"]) if versions else None


def plan(http: httpx.Client, path: Path) -> Change:
    journey = parse_journey(path.read_text())
    return Change(path, journey.key, diff(published(http, journey.key), journey))


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
    other's `enter` step."""
    changes = []
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


def _check(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise RemoteError(
            f"{response.request.method} {response.request.url.path}: "
            f"HTTP {response.status_code}: {response.text[:500]}"
        )
