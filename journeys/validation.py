"""Turn a YAML or JSON document into a validated ``Journey``, or every problem with its path."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from temporal_journeys.journeys.graph import Problem, check
from temporal_journeys.journeys.spec import Journey


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


class _CoreSchemaLoader(yaml.SafeLoader):
    """Plain YAML scalars read as YAML 1.2 (and JSON) read them. PyYAML follows YAML 1.1, where
    ``NO`` (Norway) and ``on`` are booleans, ``21:00`` is the number 1260 and ``2026-01-01`` a
    date: an unquoted clock time would be refused as not HH:MM, and a country code in a
    condition would silently compare as false."""

    yaml_implicit_resolvers: dict[Any, Any] = {}


for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("int", r"^[-+]?(?:0|[1-9][0-9]*)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|(?:0|[1-9][0-9]*)(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("merge", r"^(?:<<)$", "<"),
):
    _CoreSchemaLoader.add_implicit_resolver(
        f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), list(_first)
    )


def load_document(text: str) -> Any:
    """YAML (1.2 scalars, see ``_CoreSchemaLoader``) or JSON; JSON gets its own parser for
    exact error positions."""
    stripped = text.lstrip()
    try:
        if stripped.startswith("{"):
            return json.loads(text)
        return yaml.load(text, Loader=_CoreSchemaLoader)  # a SafeLoader: no object tags
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


def json_schema_text() -> str:
    """The JSON Schema as committed in ``docs/journey.schema.json``: indented, sorted keys,
    trailing newline."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json_schema(path: str | Path = "docs/journey.schema.json") -> None:
    """Regenerate the committed schema: ``python -c "from journeys.validation import
    write_json_schema; write_json_schema()"`` from the repository root."""
    Path(path).write_text(json_schema_text(), encoding="utf-8")
