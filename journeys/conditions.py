"""Conditions are data: ``all`` / ``any`` / ``not`` over comparisons, run events and history.

Fields are dotted paths into the evaluation context: ``contact.<trait>`` (plus ``contact.email``,
``contact.phone``, ``contact.timezone``), ``tags``, ``scores.<name>``, ``trigger.<property>``
(the event that started the run), ``event.<property>`` (the event being matched, in ``where``)
and ``variant``. Evaluation is pure, so workflow code can run it on recorded data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
    model_serializer,
    model_validator,
)

from temporal_journeys.journeys.durations import (
    JSON_SCHEMA_PATTERN,
    format_duration,
    parse_duration,
)

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists")
MAX_WINDOW = timedelta(days=3660)


def _window(value: Any) -> timedelta:
    delta = value if isinstance(value, timedelta) else parse_duration(str(value))
    if not timedelta(seconds=1) <= delta <= MAX_WINDOW:
        raise ValueError("`within` is out of range (PT1S to P3660D)")
    return delta


Window = Annotated[
    timedelta,
    BeforeValidator(_window),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^" + JSON_SCHEMA_PATTERN,
            "description": "ISO 8601 duration from PT1S to P3660D, e.g. P30D",
        }
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True
    )


class Compare(_Model):
    """``{field: scores.lead, gte: 50}``: exactly one operator per comparison."""

    # `field` and one operator, no more (the schema's way to say "exactly one operator").
    model_config = ConfigDict(json_schema_extra={"minProperties": 2, "maxProperties": 2})

    field: str = Field(min_length=1)
    eq: Any = None
    ne: Any = None
    gt: Any = None
    gte: Any = None
    lt: Any = None
    lte: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    contains: Any = None
    exists: bool | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Compare:
        if len(self.operators()) != 1:
            raise ValueError(f"a comparison has exactly one operator of {', '.join(OPERATORS)}")
        return self

    @model_serializer(mode="plain")
    def _only_the_operator(self) -> dict[str, Any]:
        # Unset operators must stay absent: `eq: null` is a comparison of its own.
        return {"field": self.field, **dict(self.operators())}

    def operators(self) -> list[tuple[str, Any]]:
        return [
            (op, getattr(self, "in_" if op == "in" else op))
            for op in OPERATORS
            if (op == "in" and "in_" in self.model_fields_set) or op in self.model_fields_set
        ]


class History(_Model):
    """Events of this contact in the store: ``{event: order.completed, within: P30D, min: 1}``."""

    event: str = Field(min_length=1)
    within: Window | None = None
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> History:
        if self.min is None and self.max is None:
            return self.model_copy(update={"min": 1})
        return self

    def cache_key(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


class Seen(_Model):
    """An event received by this run (from its recent-event buffer)."""

    seen: str = Field(min_length=1)
    where: Condition | None = None


class InSegment(_Model):
    """The contact is a member of a segment: ``{segment: vip}`` (``segments`` in the context)."""

    segment: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$")


class All(_Model):
    all: list[Condition] = Field(min_length=1)


class AnyOf(_Model):
    any: list[Condition] = Field(min_length=1)


class Not(_Model):
    not_: Condition = Field(alias="not")


_KEYS = {
    "all": "all",
    "any": "any",
    "not": "not",
    "seen": "seen",
    "field": "compare",
    "segment": "segment",
}


def _condition_tag(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return "cond:" + {
            All: "all",
            AnyOf: "any",
            Not: "not",
            Seen: "seen",
            Compare: "compare",
            InSegment: "segment",
        }.get(type(value), "history")
    if not isinstance(value, dict):
        return None
    found = [tag for key, tag in _KEYS.items() if key in value]
    if not found and "event" in value:
        return "cond:history"
    return "cond:" + found[0] if len(found) == 1 else None


def _tagged(model: type, tag: str) -> Any:
    return Annotated[model, Tag("cond:" + tag)]


Condition = Annotated[
    _tagged(All, "all")
    | _tagged(AnyOf, "any")
    | _tagged(Not, "not")
    | _tagged(Seen, "seen")
    | _tagged(Compare, "compare")
    | _tagged(History, "history")
    | _tagged(InSegment, "segment"),
    Discriminator(
        _condition_tag,
        custom_error_type="condition_kind",
        custom_error_message=(
            "a condition is one of {all: [...]}, {any: [...]}, {not: ...}, "
            "{field: ..., <operator>: ...}, {seen: <event>}, {event: <name>, within: ...} "
            "or {segment: <key>}"
        ),
    ),
]

for _model in (Seen, All, AnyOf, Not):
    _model.model_rebuild()


# --- evaluation ---------------------------------------------------------------------------


def lookup(context: Mapping[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return None
    return value


def reference(value: Any) -> str | None:
    """The field an operand names, when it is ``{field: <dotted path>}`` and nothing else:
    ``{field: event.cart_id, eq: {field: trigger.cart_id}}`` compares two fields."""
    if isinstance(value, Mapping) and len(value) == 1 and isinstance(value.get("field"), str):
        return value["field"]
    return None


def _holds(op: str, actual: Any, value: Any, context: Mapping[str, Any]) -> bool:
    """One operator against a literal, or against the field a reference names; a reference
    to a missing field makes the comparison false (two absent cart ids are not one cart)."""
    field = reference(value)
    if field is None:
        return _compare(op, actual, value)
    expected = lookup(context, field)
    return expected is not None and _compare(op, actual, expected)


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "exists":
        return (actual is not None) == bool(expected)
    if op == "eq":
        return actual == expected
    if op == "ne":
        return actual != expected
    if op == "in":
        return actual in (expected or [])
    if op == "contains":
        if not isinstance(actual, str | list | tuple | dict):
            return False
        try:
            return expected in actual
        except TypeError:
            # A number in a string, a list as a dict key: a mismatch is false, never an error.
            return False
    try:
        return {
            "gt": lambda: actual > expected,
            "gte": lambda: actual >= expected,
            "lt": lambda: actual < expected,
            "lte": lambda: actual <= expected,
        }[op]()
    except TypeError:
        # Comparing a missing value or a string with a number is false, never an error.
        return False


def evaluate(
    condition: Any,
    context: Mapping[str, Any],
    history: Mapping[str, int] | None = None,
    seen: list[Mapping[str, Any]] | None = None,
) -> bool:
    """Evaluate a condition; ``history`` holds counts answered for each ``History`` key and
    ``seen`` the events this run received (``{"name": ..., "properties": ...}``)."""
    if isinstance(condition, All):
        return all(evaluate(c, context, history, seen) for c in condition.all)
    if isinstance(condition, AnyOf):
        return any(evaluate(c, context, history, seen) for c in condition.any)
    if isinstance(condition, Not):
        return not evaluate(condition.not_, context, history, seen)
    if isinstance(condition, Compare):
        actual = lookup(context, condition.field)
        return all(_holds(op, actual, value, context) for op, value in condition.operators())
    if isinstance(condition, Seen):
        return any(
            event.get("name") == condition.seen
            and (
                condition.where is None
                or evaluate(
                    condition.where,
                    {**context, "event": event.get("properties") or {}},
                    history,
                    seen,
                )
            )
            for event in seen or []
        )
    if isinstance(condition, InSegment):
        return condition.segment in (context.get("segments") or ())
    if isinstance(condition, History):
        count = (history or {}).get(condition.cache_key())
        if count is None:
            raise KeyError(f"history condition {condition.cache_key()} was not answered")
        low_ok = condition.min is None or count >= condition.min
        return low_ok and (condition.max is None or count <= condition.max)
    raise TypeError(f"not a condition: {condition!r}")


def _nodes(condition: Any) -> list[Any]:
    """Every node of a condition tree, depth first."""
    found = [condition]
    if isinstance(condition, All):
        children = condition.all
    elif isinstance(condition, AnyOf):
        children = condition.any
    elif isinstance(condition, Not):
        children = [condition.not_]
    elif isinstance(condition, Seen) and condition.where is not None:
        children = [condition.where]
    else:
        children = []
    for child in children:
        found.extend(_nodes(child))
    return found


def history_conditions(condition: Any) -> list[History]:
    """Every ``History`` node in a condition tree, in order, without repeats."""
    found: dict[str, History] = {}
    for node in _nodes(condition):
        if isinstance(node, History):
            found.setdefault(node.cache_key(), node)
    return list(found.values())


def segment_keys(condition: Any) -> set[str]:
    """Keys of the segments a condition asks about (``{segment: KEY}``)."""
    return {node.segment for node in _nodes(condition) if isinstance(node, InSegment)}


def seen_event_names(condition: Any) -> set[str]:
    """Names of the events a condition asks whether this run has seen."""
    return {node.seen for node in _nodes(condition) if isinstance(node, Seen)}
