"""Journeys as code against a running API: diff the files with what is published, apply them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from journeys.spec import Journey
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
    """Save each file as the draft and publish it when it differs from the live version."""
    changes = []
    for path in paths:
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


def _check(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise RemoteError(
            f"{response.request.method} {response.request.url.path}: "
            f"HTTP {response.status_code}: {response.text[:500]}"
        )
