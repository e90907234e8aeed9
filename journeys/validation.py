"""Turn a YAML or JSON document into a validated ``Journey``, or every problem with its path."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from journeys.graph import Problem, check
from journeys.spec import Journey


class SpecInvalid(ValueError):
    """A journey document with problems; ``problems`` lists each with its JSON path."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))


def json_path(loc: Iterable[int | str]) -> str:
    path = "$"
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif ":" in part:
            # Union tags (`step:send`, `cond:compare`) say which model was tried, not where in
            # the document the problem is.
            continue
        else:
            path += f".{part}"
    return path


def _problems_from(error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        problems.append(Problem(json_path(item["loc"]), message))
    return problems


def load_document(text: str) -> Any:
    """YAML is a superset of JSON, but JSON gets its own parser for exact error positions."""
    stripped = text.lstrip()
    try:
        if stripped.startswith("{"):
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecInvalid([Problem("$", f"not valid YAML or JSON: {exc}")]) from exc


def parse_journey(
    document: Any,
    *,
    templates: Iterable[str] | None = None,
    journeys: Iterable[str] | None = None,
) -> Journey:
    """Validate a parsed document (a dict) or its text; raise ``SpecInvalid`` with every problem."""
    if isinstance(document, str | bytes):
        document = load_document(document.decode() if isinstance(document, bytes) else document)
    if not isinstance(document, dict):
        raise SpecInvalid([Problem("$", "a journey is a mapping with key, name, trigger, steps")])
    try:
        journey = Journey.model_validate(document)
    except ValidationError as exc:
        raise SpecInvalid(_problems_from(exc)) from exc
    problems = check(journey, templates=templates, journeys=journeys)
    if problems:
        raise SpecInvalid(problems)
    return journey


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a journey document, for editors and for the docs."""
    schema = Journey.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def write_json_schema(path: Path) -> None:
    path.write_text(json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n")
