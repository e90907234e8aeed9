"""Segment documents: a key, a name and a condition over contacts, kept up to date by the store.

The condition language extends the journey one (``all`` / ``any`` / ``not``, ``{field: ...}``
comparisons, ``{event: ..., within: ..., min: ...}`` history) with what audiences need:

- ``{trait: age, gte: 18}``, ``{trait: city, in: [Paris, Lyon]}``, ``{trait: interests,
  contains: running}``, ``{trait: email, exists: true}``; ``type`` (string, number, boolean,
  date) says how the trait is read; dates take ``before`` / ``after`` (an ISO date, or a
  duration meaning "that long ago") and ``within`` (in the last ...);
- ``{tag: vip}`` and ``{score: lead, gte: 50}`` (a missing score counts as 0);
- ``{event: order.completed, within: P90D, min: 1, max: 3, where: [{property: total, gte: 100}]}``
  ("did E at least / at most N times"; ``max: 0`` is "did not do E");
- ``{last_event: order.completed, before: P90D}`` (the last one is older than that),
  ``within`` / ``after`` likewise;
- ``{segment: vip}``: membership of another segment.

Membership is computed in SQL (``store/segments.py``) from this tree; the domain part here is the
model, validation (unknown segments, cycles) and the facts the store needs: which events and
which profile changes can move a contact in or out, and whether time alone can.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    ValidationError,
    WithJsonSchema,
    model_serializer,
    model_validator,
)

from temporal_journeys.journeys.conditions import (
    MAX_WINDOW,
    Compare,
    History,
    InSegment,
    Window,
    segment_keys,
)
from temporal_journeys.journeys.durations import format_duration, parse_duration
from temporal_journeys.journeys.graph import Problem
from temporal_journeys.journeys.spec import BranchStep, Journey, ScheduleTrigger, SegmentTrigger
from temporal_journeys.journeys.validation import SpecInvalid

SEGMENT_ENTERED = "segment.entered"
SEGMENT_EXITED = "segment.exited"
MIN_REFRESH = timedelta(minutes=1)
DEFAULT_REFRESH = timedelta(hours=1)
TRAIT_TYPES = ("string", "number", "boolean", "date")
PROFILE_FIELDS = ("email", "phone", "timezone")
VALUE_OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists")
DATE_OPERATORS = ("before", "after", "within")

SegmentKey = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
# Flat names: they become JSON paths in SQL (`$."name"` on SQLite, `-> 'name'` on Postgres).
TraitName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z_][\w-]*$")]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True
    )


def _moment(value: Any) -> date | timedelta:
    """A date bound: an ISO date (``2026-01-31``) or a duration meaning "that long ago"."""
    if isinstance(value, date | timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("a date bound is an ISO date (2026-01-31) or a duration ago (P90D)")
    if value.startswith("P"):
        delta = parse_duration(value)
        if not timedelta(0) < delta <= MAX_WINDOW:
            raise ValueError("a duration ago is from PT1S to P3660D")
        return delta
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise ValueError(
            f"{value!r} is neither an ISO date (2026-01-31) nor a duration ago (P90D)"
        ) from None


Moment = Annotated[
    date | timedelta,
    BeforeValidator(_moment),
    PlainSerializer(
        lambda v: format_duration(v) if isinstance(v, timedelta) else v.isoformat(),
        return_type=str,
    ),
    WithJsonSchema(
        {
            "type": "string",
            "description": "An ISO date (2026-01-31) or a duration ago (P90D: 90 days ago)",
        }
    ),
]


def resolve(moment: date | timedelta, now: datetime) -> datetime:
    """A bound as a moment: a date is its midnight (UTC), a duration is ``now`` minus it."""
    if isinstance(moment, timedelta):
        return now - moment
    return datetime(moment.year, moment.month, moment.day, tzinfo=now.tzinfo)


class _Comparison(_Model):
    """One operator and its value, on a trait, a score or an event property."""

    eq: Any = None
    ne: Any = None
    gt: Any = None
    gte: Any = None
    lt: Any = None
    lte: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    contains: Any = None
    exists: bool | None = None
    before: Moment | None = None
    after: Moment | None = None
    within: Window | None = None

    def operators(self) -> list[tuple[str, Any]]:
        found = []
        for op in (*VALUE_OPERATORS, *DATE_OPERATORS):
            attr = "in_" if op == "in" else op
            if attr in self.model_fields_set:
                found.append((op, getattr(self, attr)))
        return found

    def _check(self, subject: str, type_: str | None) -> None:
        ops = self.operators()
        if len(ops) != 1:
            raise ValueError(
                f"{subject} takes exactly one operator of "
                + ", ".join((*VALUE_OPERATORS, *DATE_OPERATORS))
            )
        op, value = ops[0]
        if value is None and op != "exists":
            raise ValueError(f"`{op}` needs a value (use `exists: false` for a missing one)")
        if op in DATE_OPERATORS and type_ != "date":
            raise ValueError(f"`{op}` compares dates: add `type: date`")
        if type_ == "date" and op not in (*DATE_OPERATORS, "exists"):
            raise ValueError("a date is compared with before, after, within or exists")
        if op == "in" and not value:
            raise ValueError("`in` needs a non-empty list")
        for item in value if op == "in" else [value]:
            if op != "exists" and isinstance(item, dict | list):
                raise ValueError(f"`{op}` compares with a string, number or boolean")
            if type_ in ("string", "number", "boolean") and op not in ("exists", "contains"):
                expected = {"string": str, "number": int | float, "boolean": bool}[type_]
                if not isinstance(item, expected) or (type_ == "number" and item is True):
                    raise ValueError(f"`{op}` of a {type_} trait needs a {type_} value")

    def op(self) -> tuple[str, Any]:
        return self.operators()[0]

    @model_serializer(mode="wrap")
    def _only_set(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        keep = {"in" if op == "in" else op for op, _ in self.operators()}
        extra = {
            k: v
            for k, v in data.items()
            if k not in (*VALUE_OPERATORS, *DATE_OPERATORS) and v is not None
        }
        return {**extra, **{k: v for k, v in data.items() if k in keep}}


class TraitCondition(_Comparison):
    trait: TraitName
    type: Literal["string", "number", "boolean", "date"] | None = Field(
        default=None, description="How the trait is read; inferred from the value when omitted."
    )

    @model_validator(mode="after")
    def _valid(self) -> TraitCondition:
        self._check(f"trait {self.trait!r}", self.type)
        return self


class ScoreCondition(_Comparison):
    score: TraitName

    @model_validator(mode="after")
    def _valid(self) -> ScoreCondition:
        self._check(f"score {self.score!r}", "number")
        op, _ = self.op()
        if op not in ("eq", "ne", "gt", "gte", "lt", "lte", "in"):
            raise ValueError("a score is compared with eq, ne, gt, gte, lt, lte or in")
        return self


class TagCondition(_Model):
    tag: str = Field(min_length=1, max_length=200)


class PropertyFilter(_Comparison):
    property: TraitName
    type: Literal["string", "number", "boolean", "date"] | None = None

    @model_validator(mode="after")
    def _valid(self) -> PropertyFilter:
        self._check(f"property {self.property!r}", self.type)
        return self


class EventCondition(_Model):
    """How many times the contact did ``event`` (within a window, with property filters)."""

    event: str = Field(min_length=1, max_length=200)
    within: Window | None = None
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    where: list[PropertyFilter] = Field(default_factory=list)

    @model_validator(mode="after")
    def _bounds(self) -> EventCondition:
        if self.min is None and self.max is None:
            return self.model_copy(update={"min": 1})
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("`min` is larger than `max`")
        return self


class LastEventCondition(_Model):
    """When the contact last did ``event``: ``before`` (older than), ``after``, ``within``."""

    last_event: str = Field(min_length=1, max_length=200)
    before: Moment | None = None
    after: Moment | None = None
    within: Window | None = None

    @model_validator(mode="after")
    def _one(self) -> LastEventCondition:
        if sum(v is not None for v in (self.before, self.after, self.within)) != 1:
            raise ValueError("last_event takes exactly one of before, after, within")
        return self

    @model_serializer(mode="wrap")
    def _only_set(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class AllOf(_Model):
    all: list[SegmentCondition] = Field(min_length=1)


class AnyOf(_Model):
    any: list[SegmentCondition] = Field(min_length=1)


class NotOf(_Model):
    not_: SegmentCondition = Field(alias="not")


_KINDS: dict[str, str] = {
    "all": "all",
    "any": "any",
    "not": "not",
    "trait": "trait",
    "tag": "tag",
    "score": "score",
    "last_event": "last_event",
    "segment": "segment",
    "field": "field",
}
_MODELS: dict[type, str] = {
    AllOf: "all",
    AnyOf: "any",
    NotOf: "not",
    TraitCondition: "trait",
    TagCondition: "tag",
    ScoreCondition: "score",
    LastEventCondition: "last_event",
    InSegment: "segment",
    Compare: "field",
    EventCondition: "event",
}


def _kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        kind = _MODELS.get(type(value))
        return None if kind is None else "seg:" + kind
    if not isinstance(value, dict):
        return None
    found = [tag for key, tag in _KINDS.items() if key in value]
    if not found and "event" in value:
        return "seg:event"
    return "seg:" + found[0] if len(found) == 1 else None


SegmentCondition = Annotated[
    Annotated[AllOf, Tag("seg:all")]
    | Annotated[AnyOf, Tag("seg:any")]
    | Annotated[NotOf, Tag("seg:not")]
    | Annotated[TraitCondition, Tag("seg:trait")]
    | Annotated[TagCondition, Tag("seg:tag")]
    | Annotated[ScoreCondition, Tag("seg:score")]
    | Annotated[EventCondition, Tag("seg:event")]
    | Annotated[LastEventCondition, Tag("seg:last_event")]
    | Annotated[InSegment, Tag("seg:segment")]
    | Annotated[Compare, Tag("seg:field")],
    Discriminator(
        _kind,
        custom_error_type="segment_condition_kind",
        custom_error_message=(
            "a segment condition is one of {all: [...]}, {any: [...]}, {not: ...}, "
            "{trait: ...}, {tag: ...}, {score: ...}, {event: ...}, {last_event: ...}, "
            "{segment: ...} or {field: ..., <operator>: ...}"
        ),
    ),
]

for _model in (AllOf, AnyOf, NotOf):
    _model.model_rebuild()


def _refresh(value: Any) -> timedelta:
    delta = value if isinstance(value, timedelta) else parse_duration(str(value))
    if not MIN_REFRESH <= delta <= timedelta(days=7):
        raise ValueError("`refresh` is from PT1M to P7D")
    return delta


Refresh = Annotated[
    timedelta,
    BeforeValidator(_refresh),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "description": "ISO 8601 duration, PT1M to P7D"}),
]


class Segment(_Model):
    """A segment document (``kind: segment`` in a folder of journeys)."""

    kind: Literal["segment"] = "segment"
    key: SegmentKey
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    refresh: Refresh = Field(
        default=DEFAULT_REFRESH,
        description="How often conditions that change with time alone are recomputed.",
    )
    condition: SegmentCondition


# --- facts about a condition ---------------------------------------------------------------


def nodes(condition: Any) -> list[Any]:
    """Every node of a segment condition, depth first."""
    found = [condition]
    if isinstance(condition, AllOf):
        children: list[Any] = list(condition.all)
    elif isinstance(condition, AnyOf):
        children = list(condition.any)
    elif isinstance(condition, NotOf):
        children = [condition.not_]
    else:
        children = []
    for child in children:
        found.extend(nodes(child))
    return found


@dataclass(frozen=True)
class Dependencies:
    """What can move a contact in or out of a segment (not counting the segments it names)."""

    traits: frozenset[str]  # traits and profile fields (email, phone, timezone) it reads
    contact_state: bool  # tags or scores (changed by journeys' update steps, not by identify)
    events: frozenset[str]  # names of events it counts
    segments: frozenset[str]  # segments it names
    timed: bool  # a window or a relative date: time alone changes it

    @property
    def profile(self) -> bool:
        return bool(self.traits) or self.contact_state


_DEPENDENCIES: dict[int, tuple[Segment, Dependencies]] = {}


def dependencies(segment: Segment) -> Dependencies:
    # Asked on every ingest for every segment; segments are immutable, so each is read once
    # (kept with the segment itself, so that its id is not reused).
    found = _DEPENDENCIES.get(id(segment))
    if found is not None and found[0] is segment:
        return found[1]
    answer = _dependencies(segment)
    if len(_DEPENDENCIES) > 10_000:
        _DEPENDENCIES.clear()
    _DEPENDENCIES[id(segment)] = (segment, answer)
    return answer


def _dependencies(segment: Segment) -> Dependencies:
    timed, contact_state = False, False
    traits: set[str] = set()
    events: set[str] = set()
    segments: set[str] = set()
    for node in nodes(segment.condition):
        if isinstance(node, TraitCondition):
            traits.add(node.trait)
            if node.type == "date":
                op, value = node.op()
                timed = timed or op == "within" or isinstance(value, timedelta)
        elif isinstance(node, TagCondition | ScoreCondition):
            contact_state = True
        elif isinstance(node, Compare):
            kind, name = compare_target(node.field) or ("", "")
            if kind == "trait":
                traits.add(name)
            else:
                contact_state = True
        elif isinstance(node, EventCondition):
            events.add(node.event)
            timed = timed or node.within is not None
            for item in node.where:
                op, value = item.op()
                timed = timed or op == "within" or isinstance(value, timedelta)
        elif isinstance(node, LastEventCondition):
            events.add(node.last_event)
            timed = timed or node.within is not None
            timed = timed or isinstance(node.before or node.after, timedelta)
        elif isinstance(node, InSegment):
            segments.add(node.segment)
    return Dependencies(
        frozenset(traits), contact_state, frozenset(events), frozenset(segments), timed
    )


def field_problems(condition: Any, path: str = "$.condition") -> list[Problem]:
    """``{field: ...}`` comparisons in a segment read the contact: ``contact.<trait>``, ``tags``
    or ``scores.<name>`` (``trigger.*`` and ``event.*`` mean nothing outside a run)."""
    problems = []
    if isinstance(condition, AllOf | AnyOf):
        key = "all" if isinstance(condition, AllOf) else "any"
        for index, child in enumerate(getattr(condition, key)):
            problems.extend(field_problems(child, f"{path}.{key}[{index}]"))
    elif isinstance(condition, NotOf):
        problems.extend(field_problems(condition.not_, f"{path}.not"))
    elif isinstance(condition, Compare):
        target = compare_target(condition.field)
        if target is None:
            problems.append(
                Problem(
                    f"{path}.field",
                    f"{condition.field!r}: a segment compares contact.<trait>, tags or "
                    "scores.<name>",
                )
            )
        elif target[0] == "tags" and condition.operators()[0][0] != "contains":
            problems.append(Problem(f"{path}.field", "`tags` is compared with contains"))
        for op, value in condition.operators():
            items = value if op == "in" and isinstance(value, list) else [value]
            if any(isinstance(item, dict | list) for item in items):
                problems.append(
                    Problem(f"{path}.{op}", "a segment compares with a string, number or boolean")
                )
    return problems


def compare_target(field: str) -> tuple[str, str] | None:
    """A ``{field: ...}`` path as (``trait`` | ``tags`` | ``score``, name), or None."""
    head, _, rest = field.partition(".")
    if head == "contact" and rest and "." not in rest:
        return ("trait", rest)
    if field == "tags":
        return ("tags", "")
    if head == "scores" and rest and "." not in rest:
        return ("score", rest)
    return None


def as_history(condition: History) -> EventCondition:
    """A journey history condition is a segment event condition without filters."""
    return EventCondition(
        event=condition.event, within=condition.within, min=condition.min, max=condition.max
    )


class SegmentInvalid(SpecInvalid):
    """A segment document with problems, each with its JSON path (a 422 through the API)."""


def is_segment_document(document: Any) -> bool:
    """Segment files sit beside journey files; ``kind: segment`` tells them apart."""
    return isinstance(document, dict) and document.get("kind") == "segment"


def _json_path(loc: Iterable[int | str]) -> str:
    path = "$"
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif ":" not in part:
            path += f".{part}"
    return path


def _reference_paths(condition: Any, path: str) -> list[tuple[str, str]]:
    """(JSON path, key) of every ``{segment: KEY}`` in the tree."""
    found = []
    if isinstance(condition, AllOf | AnyOf):
        key = "all" if isinstance(condition, AllOf) else "any"
        for index, child in enumerate(getattr(condition, key)):
            found.extend(_reference_paths(child, f"{path}.{key}[{index}]"))
    elif isinstance(condition, NotOf):
        found.extend(_reference_paths(condition.not_, f"{path}.not"))
    elif isinstance(condition, InSegment):
        found.append((f"{path}.segment", condition.segment))
    return found


def parse_segment(document: Any, *, others: Mapping[str, Segment] | None = None) -> Segment:
    """Validate a segment document against the other stored segments (``others``, by key):
    every problem with its JSON path, unknown segments and cycles included."""
    if not isinstance(document, dict):
        raise SegmentInvalid([Problem("$", "a segment is a mapping with key, name, condition")])
    try:
        segment = Segment.model_validate(document)
    except ValidationError as exc:
        raise SegmentInvalid(
            [
                Problem(_json_path(e["loc"]), e["msg"].removeprefix("Value error, "))
                for e in exc.errors(include_url=False)
            ]
        ) from exc
    problems = field_problems(segment.condition)
    if others is not None:
        known = {**others, segment.key: segment}
        for path, key in _reference_paths(segment.condition, "$.condition"):
            if key not in known:
                problems.append(Problem(path, f"unknown segment {key!r}"))
            elif key == segment.key or segment.key in _reaches(key, known):
                problems.append(
                    Problem(path, f"segment {key!r} leads back to {segment.key!r}: a cycle")
                )
    if problems:
        raise SegmentInvalid(problems)
    return segment


def _reaches(start: str, segments: Mapping[str, Segment]) -> set[str]:
    """Every segment reachable from ``start`` through ``{segment: ...}`` references."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        current = segments.get(todo.pop())
        if current is None:
            continue
        for ref in dependencies(current).segments:
            if ref not in seen:
                seen.add(ref)
                todo.append(ref)
    return seen


def in_dependency_order(segments: Iterable[Segment]) -> list[Segment]:
    """Segments before those that name them (references are acyclic, checked on save)."""
    by_key = {s.key: s for s in segments}
    done: dict[str, Segment] = {}

    def visit(key: str, trail: tuple[str, ...]) -> None:
        if key in done or key not in by_key or key in trail:
            return
        for ref in sorted(dependencies(by_key[key]).segments):
            visit(ref, (*trail, key))
        done[key] = by_key[key]

    for key in sorted(by_key):
        visit(key, ())
    return list(done.values())


def dependents(key: str, segments: Iterable[Segment]) -> list[str]:
    """Segments that name ``key``, directly or through others."""
    segments = list(segments)
    found: list[str] = []
    frontier = {key}
    while frontier:
        nxt = {
            s.key
            for s in segments
            if dependencies(s).segments & frontier and s.key not in found and s.key != key
        }
        found.extend(sorted(nxt))
        frontier = nxt
    return found


def unknown_segment_problems(journey: Journey, known: Iterable[str]) -> list[Problem]:
    """A journey's segment trigger and ``{segment: KEY}`` branch cases must name stored segments
    (checked by the API, as templates are)."""
    known = set(known)
    problems = []
    if (
        isinstance(journey.trigger, SegmentTrigger | ScheduleTrigger)
        and journey.trigger.segment not in known
    ):
        problems.append(
            Problem("$.trigger.segment", f"unknown segment {journey.trigger.segment!r}")
        )
    for index, step in enumerate(journey.steps):
        if not isinstance(step, BranchStep):
            continue
        for case_index, case in enumerate(step.branch.cases):
            for key in sorted(segment_keys(case.when) - known):
                problems.append(
                    Problem(
                        f"$.steps[{index}].branch.cases[{case_index}].when",
                        f"unknown segment {key!r}",
                    )
                )
    return problems
