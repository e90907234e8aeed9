"""Segments: their documents, their members, and membership computed in SQL.

A segment's condition compiles to one SQL predicate over ``contacts`` (events, members of other
segments and JSON traits read in subqueries), the same on Postgres and SQLite up to the JSON
functions. ``apply()`` uses it for every change of membership: for a few contacts in the ingest
transaction (``react()``), for a range of contact ids in a backfill batch, for everyone in a
scheduled recompute. It is set-based: one INSERT ... SELECT for those who enter and one DELETE
for those who leave, whatever the number of contacts, and the entered and exited events are
stored and queued for routing through ``events.accept()`` in the same transaction. On the
ingest path of Postgres (``react()``), each level of segments is one statement for every
contact and segment concerned (``_level_statement``): evaluation, members and their events.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    column,
    delete,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    text,
    tuple_,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from sqlalchemy.sql import FromClause
from sqlalchemy.types import UserDefinedType

from temporal_journeys.journeys.conditions import Compare, InSegment
from temporal_journeys.journeys.segments import (
    SEGMENT_ENTERED,
    SEGMENT_EXITED,
    AllOf,
    AnyOf,
    EventCondition,
    LastEventCondition,
    NotOf,
    PropertyFilter,
    ScoreCondition,
    Segment,
    TagCondition,
    TraitCondition,
    compare_target,
    dependencies,
    dependents,
    in_dependency_order,
    resolve,
)
from temporal_journeys.store import events as events_store
from temporal_journeys.store import outbox as outbox_store
from temporal_journeys.store.models import (
    Contact,
    Event,
    JourneyRow,
    JourneyVersion,
    OutboxEntry,
    SegmentMember,
    SegmentRow,
    utcnow,
)

CONTACTS = Contact.__table__
MEMBERS = SegmentMember.__table__
EVENTS = Event.__table__


# --- documents ------------------------------------------------------------------------------


def get(session: Session, key: str) -> SegmentRow | None:
    return session.get(SegmentRow, key)


def rows(session: Session) -> list[SegmentRow]:
    return list(session.scalars(select(SegmentRow).order_by(SegmentRow.key)))


_PARSED: dict[tuple[str, int, str], Segment] = {}


def _parse(key: str, version: int, definition: dict[str, Any]) -> Segment:
    # Parsed once per process per definition; keyed by its text too, as a segment deleted and
    # saved again starts over at version 1.
    text = json.dumps(definition, sort_keys=True)
    found = _PARSED.get((key, version, text))
    if found is None:
        found = _PARSED[(key, version, text)] = Segment.model_validate(definition)
    return found


# Segments by (key, version, digest of the stored definition): what ``definitions`` knows.
_KNOWN: dict[tuple[str, int, str], Segment] = {}


def _digest(dialect: str) -> Any:
    # Which definition a row holds, without sending it: a deleted segment saved again starts
    # over at version 1. Postgres hashes its canonical text; SQLite's stored text is the key.
    as_text = cast(SegmentRow.definition, String)
    return func.md5(as_text) if dialect == "postgresql" else as_text


# Built once per dialect: every ingest reads the first, and building it cost more than running it.
_MARKS = {
    dialect: select(SegmentRow.key, SegmentRow.version, _digest(dialect))
    for dialect in ("postgresql", "sqlite")
}
_DEFINITIONS = {
    dialect: select(SegmentRow.key, SegmentRow.version, SegmentRow.definition, _digest(dialect))
    for dialect in ("postgresql", "sqlite")
}


def definitions(session: Session) -> dict[str, Segment]:
    """Every stored segment, by key (read on each ingest: one small query of keys, versions
    and digests; the definitions themselves only when one is new to this process, since
    decoding and parsing them on every ingest cost it more than the query)."""
    connection = session.connection()  # three columns need none of the ORM's result machinery
    dialect = connection.dialect.name
    known = connection.execute(_MARKS[dialect]).all()
    found = {key: _KNOWN.get((key, version, mark)) for key, version, mark in known}
    if all(segment is not None for segment in found.values()):
        return found  # type: ignore[return-value]
    if len(_KNOWN) > 10_000:
        _KNOWN.clear()
    answer = {}
    for key, version, definition, mark in connection.execute(_DEFINITIONS[dialect]):
        segment = _KNOWN.get((key, version, mark)) or _parse(key, version, definition)
        answer[key] = _KNOWN[(key, version, mark)] = segment
    return answer


def segment_of(row: SegmentRow) -> Segment:
    return _parse(row.key, row.version, row.definition)


def put(session: Session, segment: Segment) -> tuple[SegmentRow, bool]:
    """Store ``segment``; True when it is new or its definition changed (a new version)."""
    definition = segment.model_dump(mode="json")
    row = session.get(SegmentRow, segment.key, with_for_update=True)
    if row is None:
        row = SegmentRow(key=segment.key, name=segment.name, definition=definition, version=1)
        session.add(row)
        session.flush()
        return row, True
    if row.definition == definition:
        return row, False
    row.name = segment.name
    row.definition = definition
    row.version += 1
    session.flush()
    return row, True


def remove(session: Session, key: str, now: datetime) -> list[str]:
    """Delete the segment; its members leave it, each with a ``segment.exited`` event stored
    and queued for routing as any exit is (in the caller's transaction: one DELETE ...
    RETURNING and one insert of the events, whatever the number of members). Answers them."""
    exited = sorted(
        session.execute(
            delete(MEMBERS).where(MEMBERS.c.segment_key == key).returning(MEMBERS.c.contact_id)
        )
        .scalars()
        .all()
    )
    session.execute(delete(SegmentRow).where(SegmentRow.key == key))
    _record(session, key, Changes(exited=exited), now)
    return exited


def mark_backfilled(session: Session, key: str, version: int) -> bool:
    """Record that ``version``'s backfill finished; False if the segment moved on or is gone."""
    row = session.get(SegmentRow, key, with_for_update=True)
    if row is None or row.version != version:
        return False
    row.backfilled_version = version
    return True


def members(session: Session, key: str, *, after: str | None, limit: int) -> list[tuple[str, Any]]:
    """(contact id, entered at) of members, by contact id, from the one after ``after``."""
    query = select(MEMBERS.c.contact_id, MEMBERS.c.entered_at).where(MEMBERS.c.segment_key == key)
    if after is not None:
        query = query.where(MEMBERS.c.contact_id > after)
    return [
        (row[0], row[1])
        for row in session.execute(query.order_by(MEMBERS.c.contact_id).limit(limit))
    ]


def count(session: Session, key: str) -> int:
    query = select(func.count()).select_from(MEMBERS).where(MEMBERS.c.segment_key == key)
    return session.scalar(query) or 0


def keys_of(session: Any, contact_id: str) -> list[str]:
    """The segments a contact is in (a Session or a Core connection)."""
    query = (
        select(MEMBERS.c.segment_key)
        .where(MEMBERS.c.contact_id == contact_id)
        .order_by(MEMBERS.c.segment_key)
    )
    return list(session.execute(query).scalars())


def contact_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(CONTACTS)) or 0


def contact_ids_after(session: Session, after: str | None, limit: int) -> list[str]:
    query = select(CONTACTS.c.id).order_by(CONTACTS.c.id).limit(limit)
    if after is not None:
        query = query.where(CONTACTS.c.id > after)
    return list(session.execute(query).scalars())


# --- conditions as SQL ----------------------------------------------------------------------


@dataclass
class _Compiler:
    """One segment condition as a boolean SQL expression over the contacts alias ``c``."""

    dialect: str
    now: datetime
    c: FromClause
    prefix: str = "t"
    # Moments that depend on the clock, as named parameters and how each follows from `now`:
    # a statement built once is executed again at another moment with new values.
    moments: dict[str, Callable[[datetime], Any]] = field(default_factory=dict)
    # For a few contacts (an ingest's): read other segments' members by primary key.
    probe: bool = False

    @property
    def postgres(self) -> bool:
        return self.dialect == "postgresql"

    def _at(self, value_at: Callable[[datetime], Any], type_: Any) -> Any:
        name = f"{self.prefix}_{len(self.moments)}"
        self.moments[name] = value_at
        return bindparam(name, value=value_at(self.now), type_=type_)

    def condition(self, node: Any) -> ColumnElement[bool]:
        match node:
            case AllOf():
                return and_(*(self.condition(child) for child in node.all))
            case AnyOf():
                return or_(*(self.condition(child) for child in node.any))
            case NotOf():
                # A missing or mistyped trait makes a comparison NULL (unknown), which is "not
                # inside"; its negation must then be inside, not NULL again.
                return not_(func.coalesce(self.condition(node.not_), false()))
            case TraitCondition():
                return self._trait(node)
            case ScoreCondition():
                return self._score(node.score, *node.op())
            case TagCondition():
                return self._tag(node.tag)
            case EventCondition():
                return self._events(node)
            case LastEventCondition():
                return self._last_event(node)
            case InSegment():
                where = (MEMBERS.c.segment_key == node.segment, MEMBERS.c.contact_id == self.c.c.id)
                if self.probe:
                    # A scalar subquery: probed by primary key for each contact, where an
                    # EXISTS may be planned as a hash of every member of the segment.
                    found = select(literal_column("1")).where(*where).scalar_subquery()
                    return found.is_not(None)
                return exists().where(*where)
            case Compare():
                return self._compare(node)
        raise TypeError(f"not a segment condition: {node!r}")

    # JSON access: the value of ``name`` in a JSON column as SQL, only when it has ``kind``.

    def _typeof(self, column: Any, name: str) -> Any:
        if self.postgres:
            return func.jsonb_typeof(column.op("->")(literal(name, String)))
        return func.json_type(column, literal(f'$."{name}"', String))

    def _raw(self, column: Any, name: str) -> Any:
        if self.postgres:
            return column.op("->>")(literal(name, String))
        return func.json_extract(column, literal(f'$."{name}"', String))

    def _kinds(self, kind: str) -> tuple[str, ...]:
        if self.postgres:
            return {"number": ("number",), "string": ("string",), "boolean": ("boolean",)}[kind]
        return {"number": ("integer", "real"), "string": ("text",), "boolean": ("true", "false")}[
            kind
        ]

    def _typed(self, column: Any, name: str, kind: str) -> Any:
        typeof = self._typeof(column, name)
        raw = self._raw(column, name)
        if kind == "number":
            value = cast(raw, postgresql.DOUBLE_PRECISION) if self.postgres else raw
        elif kind == "boolean":
            value = (
                cast(raw, postgresql.BOOLEAN)
                if self.postgres
                else case((typeof == "true", True), else_=False)
            )
        elif kind == "date":
            # Calendar days, compared as ISO text (YYYY-MM-DD): no cast that a malformed value
            # could make fail, the same on both databases.
            return case(
                (
                    and_(typeof.in_(self._kinds("string")), self._iso_date(raw)),
                    func.substr(raw, 1, 10),
                ),
                else_=None,
            )
        else:
            value = raw
        return case((typeof.in_(self._kinds(kind)), value), else_=None)

    def _iso_date(self, raw: Any) -> ColumnElement[bool]:
        if self.postgres:
            return raw.op("~", is_comparison=True)(literal(r"^\d{4}-\d{2}-\d{2}", String))
        return raw.op("GLOB", is_comparison=True)(
            literal("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*", String)
        )

    def _value_condition(
        self, column: Any, name: str, op: str, value: Any, declared: str | None
    ) -> ColumnElement[bool]:
        """``op`` on a JSON value; a missing or mistyped value fails every operator but
        ``ne`` and ``exists: false``, as journey conditions do."""
        if op == "exists":
            present = and_(
                self._typeof(column, name).is_not(None), self._typeof(column, name) != "null"
            )
            return present if value else not_(present)
        if op == "ne":
            return not_(
                func.coalesce(self._value_condition(column, name, "eq", value, declared), false())
            )
        if op == "in":
            return or_(
                *(self._value_condition(column, name, "eq", item, declared) for item in value)
            )
        if op in ("before", "after", "within"):
            day = self._typed(column, name, "date")
            if op == "within":
                low = self._at(lambda now: (now - value).date().isoformat(), String())
                high = self._at(lambda now: now.date().isoformat(), String())
                return and_(day >= low, day <= high)
            if isinstance(value, timedelta):
                bound = self._at(lambda now: _day(resolve(value, now)), String())
            else:
                bound = literal(_day(value), String)
            return day < bound if op == "before" else day > bound
        if op == "contains":
            return self._contains(column, name, value)
        kind = declared or _kind_of(value)
        typed = self._typed(column, name, kind)
        operand = value.isoformat()[:10] if isinstance(value, date) else value
        return {
            "eq": lambda: typed == operand,
            "gt": lambda: typed > operand,
            "gte": lambda: typed >= operand,
            "lt": lambda: typed < operand,
            "lte": lambda: typed <= operand,
        }[op]()

    def _contains(self, column: Any, name: str, value: Any) -> ColumnElement[bool]:
        """A list holding ``value``, or a string holding it as a substring."""
        if self.postgres:
            element = column.op("->")(literal(name, String))
            in_list = and_(
                func.jsonb_typeof(element) == "array",
                element.op("@>", is_comparison=True)(cast(literal(json.dumps([value])), JSONB)),
            )
        else:
            each = func.json_each(column, literal(f'$."{name}"', String)).table_valued("value")
            in_list = and_(
                self._typeof(column, name) == "array",
                exists(select(literal(1)).select_from(each).where(each.c.value == value)),
            )
        if not isinstance(value, str):
            return in_list
        text_value = self._typed(column, name, "string")
        position = (
            func.strpos(text_value, value) if self.postgres else func.instr(text_value, value)
        )
        return or_(in_list, func.coalesce(position > 0, false()))

    def _trait(self, node: TraitCondition) -> ColumnElement[bool]:
        op, value = node.op()
        if node.trait in ("email", "phone", "timezone"):
            return self._profile(getattr(self.c.c, node.trait), op, value)
        return self._value_condition(self.c.c.traits, node.trait, op, value, node.type)

    def _profile(self, column: Any, op: str, value: Any) -> ColumnElement[bool]:
        match op:
            case "exists":
                return column.is_not(None) if value else column.is_(None)
            case "eq":
                return func.coalesce(column == value, false())
            case "ne":
                return not_(func.coalesce(column == value, false()))
            case "in":
                return func.coalesce(column.in_([v for v in value if isinstance(v, str)]), false())
            case "contains":
                return func.coalesce(column.contains(str(value), autoescape=True), false())
            case "gt" | "gte" | "lt" | "lte":
                if not isinstance(value, str):
                    return false()
                return func.coalesce(
                    {"gt": column > value, "gte": column >= value, "lt": column < value}.get(
                        op, column <= value
                    ),
                    false(),
                )
        return false()

    def _score(self, name: str, op: str, value: Any) -> ColumnElement[bool]:
        # A missing score counts as 0: "score below 10" includes contacts never scored.
        score = func.coalesce(self._typed(self.c.c.scores, name, "number"), 0)
        if op == "in":
            return or_(*(score == item for item in value))
        if op == "ne":
            return score != value
        return {
            "eq": score == value,
            "gt": score > value,
            "gte": score >= value,
            "lt": score < value,
            "lte": score <= value,
        }[op]

    def _tag(self, tag: str) -> ColumnElement[bool]:
        if self.postgres:
            return self.c.c.tags.op("@>", is_comparison=True)(
                cast(literal(json.dumps([tag])), JSONB)
            )
        each = func.json_each(self.c.c.tags).table_valued("value")
        return exists(select(literal(1)).select_from(each).where(each.c.value == tag))

    def _compare(self, node: Compare) -> ColumnElement[bool]:
        target = compare_target(node.field)
        if target is None:
            raise ValueError(f"{node.field!r} is not a contact field")
        kind, name = target
        op, value = node.operators()[0]
        if kind == "tags":
            if op == "contains":
                return self._tag(str(value))
            raise ValueError("`tags` is compared with contains")
        if kind == "score":
            return self._score(name, op, value)
        if name in ("email", "phone", "timezone"):
            return self._profile(getattr(self.c.c, name), op, value)
        return self._value_condition(self.c.c.traits, name, op, value, None)

    def _events(self, node: EventCondition) -> ColumnElement[bool]:
        e = EVENTS.alias("e")
        where = [e.c.contact_id == self.c.c.id, e.c.name == node.event]
        if node.within is not None:
            within = node.within
            since = self._at(lambda now: now - within, e.c.timestamp.type)
            where.append(e.c.timestamp >= since)
        where.extend(self._property(e, item) for item in node.where)
        low, high = node.min, node.max
        if high is None and low == 1:
            return exists().where(*where)
        if low in (None, 0) and high == 0:
            return not_(exists().where(*where))
        # Counting stops where the answer is known: at `max + 1`, or at `min` without a max.
        enough = (high + 1) if high is not None else low
        found = select(literal(1).label("one")).select_from(e).where(*where).limit(enough)
        found = found.correlate(self.c)
        counted = select(func.count()).select_from(found.subquery()).scalar_subquery()
        parts = []
        if low is not None:
            parts.append(counted >= low)
        if high is not None:
            parts.append(counted <= high)
        return and_(*parts)

    def _property(self, e: Any, item: PropertyFilter) -> ColumnElement[bool]:
        op, value = item.op()
        return self._value_condition(e.c.properties, item.property, op, value, item.type)

    def _last_event(self, node: LastEventCondition) -> ColumnElement[bool]:
        e = EVENTS.alias("e")
        last = (
            select(func.max(e.c.timestamp))
            .where(e.c.contact_id == self.c.c.id, e.c.name == node.last_event)
            .scalar_subquery()
        )
        stamp = e.c.timestamp.type
        if node.within is not None:
            within = node.within
            return func.coalesce(last >= self._at(lambda now: now - within, stamp), false())
        bound = node.before if node.before is not None else node.after
        moment = self._at(lambda now: resolve(bound, now), stamp)  # type: ignore[arg-type]
        compared = last < moment if node.before is not None else last > moment
        return func.coalesce(compared, false())


def _day(value: Any) -> str:
    return value.date().isoformat() if isinstance(value, datetime) else value.isoformat()


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def predicate(segment: Segment, dialect: str, now: datetime, c: FromClause) -> ColumnElement[bool]:
    return _Compiler(dialect, now, c).condition(segment.condition)


# --- membership -----------------------------------------------------------------------------


@dataclass
class Changes:
    entered: list[str] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entered) + len(self.exited)


def apply(
    session: Session,
    segment: Segment,
    now: datetime,
    *,
    contact_ids: Iterable[str] | None = None,
    id_range: tuple[str | None, str | None] | None = None,
) -> Changes:
    """Bring the segment's members up to date for those contacts (all when neither is given):
    an INSERT ... SELECT of those now inside, a DELETE of members now outside, and their
    ``segment.entered`` / ``segment.exited`` events stored and queued for routing."""
    dialect = session.get_bind().dialect.name
    c = CONTACTS.alias("c")
    inside = predicate(segment, dialect, now, c)
    scope_c: list[ColumnElement[bool]] = []
    scope_m: list[ColumnElement[bool]] = [MEMBERS.c.segment_key == segment.key]
    if contact_ids is not None:
        ids = sorted(set(contact_ids))
        if not ids:
            return Changes()
        scope_c.append(c.c.id.in_(ids))
        scope_m.append(MEMBERS.c.contact_id.in_(ids))
    if id_range is not None:
        low, high = id_range
        if low is not None:
            scope_c.append(c.c.id > low)
            scope_m.append(MEMBERS.c.contact_id > low)
        if high is not None:
            scope_c.append(c.c.id <= high)
            scope_m.append(MEMBERS.c.contact_id <= high)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    chosen = select(
        literal(segment.key, String), c.c.id, type_coerce(now, MEMBERS.c.entered_at.type)
    ).where(inside, *scope_c)
    entered = (
        session.execute(
            insert(MEMBERS)
            .from_select(["segment_key", "contact_id", "entered_at"], chosen)
            .on_conflict_do_nothing()
            .returning(MEMBERS.c.contact_id)
        )
        .scalars()
        .all()
    )
    still = select(literal(1)).select_from(c).where(c.c.id == MEMBERS.c.contact_id, inside)
    exited = (
        session.execute(
            delete(MEMBERS).where(*scope_m, not_(exists(still))).returning(MEMBERS.c.contact_id)
        )
        .scalars()
        .all()
    )
    changes = Changes(sorted(entered), sorted(exited))
    _record(session, segment.key, changes, now)
    return changes


def _record(session: Session, key: str, changes: Changes, now: datetime) -> None:
    _record_all(session, [(key, changes)], now)


def _record_all(session: Session, changes: list[tuple[str, Changes]], now: datetime) -> None:
    """The ``segment.entered`` / ``segment.exited`` events of these changes, stored and queued
    for routing (``events.accept``) in one statement on Postgres."""
    batch = uuid.uuid4().hex
    rows = [
        {
            "message_id": f"segment:{key}:{name}:{contact}:{batch}",
            "contact_id": contact,
            "name": name,
            "properties": {"segment": key},
            "timestamp": now,
        }
        for key, change in changes
        for name, contacts in ((SEGMENT_ENTERED, change.entered), (SEGMENT_EXITED, change.exited))
        for contact in contacts
    ]
    if rows:
        events_store.accept(session, rows, now)


def recompute(session: Session, key: str, now: datetime | None = None) -> dict[str, Changes]:
    """Every contact of ``key``, then of the segments that name it (in order); by key."""
    segments = definitions(session)
    if key not in segments:
        return {}
    moment = now or utcnow()
    # Contacts known only from events no segment counted when they came: in from now on.
    adopt_event_contacts(session)
    found = {}
    for name in [key, *dependents(key, segments.values())]:
        found[name] = apply(session, segments[name], moment)
    return found


@dataclass(frozen=True)
class _Level:
    """Segments that can be evaluated together (each after every segment it names: a level
    reads the members the levels before it wrote), and which of them (by position) each kind
    of change concerns: a precomputed index, so that an ingest finds the segments its calls can
    affect without looking at the others."""

    segments: tuple[Segment, ...]
    traits: dict[str, tuple[int, ...]]
    events: dict[str, tuple[int, ...]]
    state: tuple[int, ...]
    refs: dict[str, tuple[int, ...]]

    @classmethod
    def of(cls, segments: list[Segment]) -> _Level:
        traits: dict[str, list[int]] = {}
        events: dict[str, list[int]] = {}
        refs: dict[str, list[int]] = {}
        state = []
        for position, segment in enumerate(segments):
            needs = dependencies(segment)
            for index, names in ((traits, needs.traits), (events, needs.events)):
                for name in names:
                    index.setdefault(name, []).append(position)
            for ref in needs.segments:
                refs.setdefault(ref, []).append(position)
            if needs.contact_state:
                state.append(position)

        def frozen(index: dict[str, list[int]]) -> dict[str, tuple[int, ...]]:
            return {name: tuple(positions) for name, positions in index.items()}

        return cls(tuple(segments), frozen(traits), frozen(events), tuple(state), frozen(refs))

    def concerned(
        self,
        changed: Mapping[str, Iterable[str]],
        by_event: Mapping[str, set[str]],
        stated: set[str],
        moved: Mapping[str, set[str]],
    ) -> dict[str, set[int]]:
        """The contacts some segment of the level must be re-evaluated for, each with the
        positions of those segments."""
        found: dict[str, set[int]] = {}
        for contact, names in changed.items():
            for name in names:
                positions = self.traits.get(name)
                if positions:
                    found.setdefault(contact, set()).update(positions)
        for index, pairs in ((self.events, by_event), (self.refs, moved)):
            for name, contacts in pairs.items():
                positions = index.get(name)
                if positions:
                    for contact in contacts:
                        found.setdefault(contact, set()).update(positions)
        if self.state:
            for contact in stated:
                found.setdefault(contact, set()).update(self.state)
        return found


# The levels of each set of definitions, computed once: ingests ask on every call.
_LEVELS: dict[tuple[tuple[str, int], ...], tuple[tuple[Segment, ...], list[_Level]]] = {}


def _levels(segments: dict[str, Segment]) -> list[_Level]:
    # The parsed definitions are kept for the process (``_PARSED``); the segments are kept
    # with their levels, so that an id is only compared with the object it was taken from.
    key = tuple(sorted((name, id(segment)) for name, segment in segments.items()))
    found = _LEVELS.get(key)
    if found is not None and all(a is segments[b] for a, (b, _) in zip(found[0], key, strict=True)):
        return found[1]
    level: dict[str, int] = {}
    ordered = in_dependency_order(segments.values())
    for segment in ordered:
        refs = [r for r in dependencies(segment).segments if r in level]
        level[segment.key] = 1 + max((level[r] for r in refs), default=-1)
    grouped: list[list[Segment]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for segment in ordered:
        grouped[level[segment.key]].append(segment)
    levels = [_Level.of(group) for group in grouped]
    if len(_LEVELS) > 1_000:
        _LEVELS.clear()
    _LEVELS[key] = (tuple(segments[name] for name, _ in key), levels)
    return levels


def react(
    session: Session,
    *,
    profile: Mapping[str, Iterable[str]],
    events: Iterable[tuple[str, str]],
    now: datetime,
    segments: dict[str, Segment] | None = None,
    state: Iterable[str] = (),
) -> Changes:
    """Re-evaluate, for the contacts concerned only, the segments an ingest can move them in or
    out of: ``profile`` maps contacts identified to the traits the call set (a segment reading
    none of them is not re-evaluated), ``events`` are (contact, event name) pairs just stored,
    ``state`` contacts whose tags or scores changed (a journey's update step: identify sets
    neither). Segments naming a segment that moved someone follow, for those contacts. Runs in
    the ingest's transaction (whose contacts ``hold_contacts`` locked), so the 202 covers the
    membership and its events too; a journey's update step runs it in its own write's.

    The number of statements depends on the levels of segments the calls concern, not on the
    number of calls, contacts or segments. On Postgres, one per level: it evaluates every
    (segment, concerned contact) pair, applies the differences to the members and stores and
    queues the entered / exited events (``_level_statement``). On SQLite, a few per level: one
    SELECT evaluates the pairs and reads their memberships, one INSERT and one DELETE apply
    the differences, one stores their events."""
    changed = {contact: set(names) for contact, names in profile.items()}
    events = list(events)
    stated = set(state)
    if not changed and not events and not stated:
        return Changes()
    segments = definitions(session) if segments is None else segments
    if not segments:
        return Changes()
    dialect = session.get_bind().dialect.name
    # The level statements run on the session's connection, without the ORM's autoflush: the
    # caller's writes (traits, tags, events) must be in the database they read.
    session.flush()
    by_event: dict[str, set[str]] = {}
    for contact, name in events:
        by_event.setdefault(name, set()).add(contact)
    moved: dict[str, set[str]] = {}
    total = Changes()
    planning: str | None = None  # the plan cache mode to restore, once it was changed
    for level in _levels(segments):
        concerned = level.concerned(changed, by_event, stated, moved)
        if not concerned:
            continue
        if dialect == "postgresql":
            if planning is None:
                planning = session.connection().exec_driver_sql(_GENERIC_PLANS).scalar_one()
            changes = _apply_level_postgres(session, level, concerned, now)
        else:
            by_segment: dict[str, set[str]] = {}
            for contact, positions in concerned.items():
                for position in positions:
                    by_segment.setdefault(level.segments[position].key, set()).add(contact)
            chosen = [s for s in level.segments if s.key in by_segment]
            changes = _apply_pairs(session, chosen, by_segment, now, dialect)
        for key, change in changes.items():
            moved[key] = set(change.entered) | set(change.exited)
            total.entered.extend(change.entered)
            total.exited.extend(change.exited)
    if planning is not None:
        # Not in a ``finally``: after an error the transaction is aborted, and its rollback
        # (or a savepoint's) undoes the setting anyway.
        session.connection().exec_driver_sql(_PLANS_AS_BEFORE, {"mode": planning})
    return total


# A level statement's plan depends on its definitions, not on its parameters (the concerned
# contacts as one JSON document, the clock): planned once per connection instead of at every
# ingest, which cost Postgres 1.6 ms of CPU per batch of 100 calls with the bench's ten
# segments (15.2 ms against 13.6; docs/benchmarks.md). Postgres kept planning it anew because
# its generic plan's estimate exceeded that of the custom ones. Transaction-local, and only
# around the level statements: other statements keep the server's choice.
_GENERIC_PLANS = (
    "SELECT current_setting('plan_cache_mode'), "
    "set_config('plan_cache_mode', 'force_generic_plan', true)"
)
_PLANS_AS_BEFORE = "SELECT set_config('plan_cache_mode', %(mode)s, true)"


def _among(column: Any, name: str, dialect: str) -> ColumnElement[bool]:
    """``column IN :name``; on Postgres one array parameter (``= ANY``), so the statement's
    text is the same whatever the number of values and the server keeps its plan."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=postgresql.ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


@dataclass(frozen=True)
class _Evaluation:
    """The statement that evaluates a level's segments for the contacts concerned by each,
    built once per set of definitions: what varies (contacts, moments) is parameters. On
    Postgres (``_level_statement``) it is the driver's SQL text."""

    statement: Any
    moments: dict[str, Callable[[datetime], Any]]


_EVALUATIONS: dict[tuple[Any, ...], _Evaluation] = {}


def _evaluation(segments: list[Segment], dialect: str, now: datetime) -> _Evaluation:
    # The parsed definitions are kept for the process (``_PARSED``), so their ids name them.
    key = (dialect, *((segment.key, id(segment)) for segment in segments))
    found = _EVALUATIONS.get(key)
    if found is not None:
        return found
    c = CONTACTS.alias("c")
    moments: dict[str, Callable[[datetime], Any]] = {}
    columns = []
    for index, segment in enumerate(segments):
        compiler = _Compiler(dialect, now, c, prefix=f"s{index}")
        inside = compiler.condition(segment.condition)
        moments.update(compiler.moments)
        # NULL is kept for "not evaluated": a condition that is unknown (a trait removed or of
        # another type) is "outside", so a member whose trait went leaves.
        columns.append(
            case(
                (_among(c.c.id, f"ids{index}", dialect), func.coalesce(inside, false())),
                else_=None,
            ).label(f"s{index}")
        )
        # Whether it is a member now, in the same round trip.
        columns.append(
            exists()
            .where(MEMBERS.c.segment_key == segment.key, MEMBERS.c.contact_id == c.c.id)
            .label(f"m{index}")
        )
    statement = select(c.c.id, *columns).where(_among(c.c.id, "ids", dialect))
    found = _EVALUATIONS[key] = _Evaluation(statement, moments)
    return found


def _apply_pairs(
    session: Session,
    segments: list[Segment],
    concerned: dict[str, set[str]],
    now: datetime,
    dialect: str,
) -> dict[str, Changes]:
    """SQLite's ``react`` for a level: one SELECT evaluates the pairs and reads their
    memberships, one INSERT and one DELETE apply the differences, one stores their events
    (Postgres does all of it in one statement: ``_apply_level_postgres``)."""
    ids = sorted(set().union(*concerned.values()))
    evaluation = _evaluation(segments, dialect, now)
    params: dict[str, Any] = {name: value_at(now) for name, value_at in evaluation.moments.items()}
    params["ids"] = ids
    for index, segment in enumerate(segments):
        params[f"ids{index}"] = sorted(concerned[segment.key])
    inside: dict[tuple[str, str], bool] = {}
    current: set[tuple[str, str]] = set()
    for row in session.execute(evaluation.statement, params):
        for index, segment in enumerate(segments):
            value, member = row[2 * index + 1], row[2 * index + 2]
            if value is not None:
                inside[(segment.key, row[0])] = bool(value)
            if member:
                current.add((segment.key, row[0]))
    keys = [segment.key for segment in segments]
    entering = sorted(pair for pair, now_in in inside.items() if now_in and pair not in current)
    leaving = sorted(pair for pair, now_in in inside.items() if not now_in and pair in current)
    changes = {key: Changes() for key in keys}
    if entering:
        added = session.execute(
            sqlite.insert(MEMBERS)
            .values([{"segment_key": k, "contact_id": i, "entered_at": now} for k, i in entering])
            .on_conflict_do_nothing()
            .returning(MEMBERS.c.segment_key, MEMBERS.c.contact_id)
        ).all()
        for key, contact in sorted(added):
            changes[key].entered.append(contact)
    if leaving:
        removed = session.execute(
            delete(MEMBERS)
            .where(tuple_(MEMBERS.c.segment_key, MEMBERS.c.contact_id).in_(leaving))
            .returning(MEMBERS.c.segment_key, MEMBERS.c.contact_id)
        ).all()
        for key, contact in sorted(removed):
            changes[key].exited.append(contact)
    _record_all(session, [(key, changes[key]) for key in keys], now)
    return {key: change for key, change in changes.items() if change}


class _Tid(UserDefinedType[Any]):
    """Postgres's row id (``ctid``): how the level statement deletes the members it found."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "tid"


_TID = _Tid()
_TIDS = postgresql.ARRAY(_TID)


def _level_statement(level: _Level, now: datetime, dialect: Any) -> _Evaluation:
    """One Postgres statement for a level, built once per set of definitions (what varies is
    parameters: the concerned contacts with a flag per segment, the moments, the clock, a
    batch id), so its text is the same from one ingest to the next and the server keeps its
    plan. Data-modifying CTEs (one snapshot, one round trip):

    - ``concerned``: the contacts, each with a string of flags ('1' at a segment's position
      when the change concerns it), from one JSON parameter (dumped by ``json.dumps`` in C);
    - ``evaluated``: each segment's condition, under ``CASE`` so a segment a contact's change
      cannot affect is not evaluated for it (NULL: not evaluated; unknown counts as outside);
    - ``pairs``: the evaluated (segment, contact) pairs, one row each, with the membership
      row if any (found by its primary key, not by reading a whole segment's members);
    - ``entering`` / ``leaving``: an INSERT ... ON CONFLICT DO NOTHING of the pairs inside and
      not members and a DELETE of the members outside, their RETURNING being the changes;
    - ``stored`` / ``queued``: their ``segment.entered`` / ``segment.exited`` events stored and
      queued for routing, as ``events.accept`` does, in the order ``_record_all`` gives them
      (by segment, entered before exited, by contact).

    It answers (segment key, contact, 0 entered | 1 exited)."""
    key = ("level", dialect.driver, *((segment.key, id(segment)) for segment in level.segments))
    found = _EVALUATIONS.get(key)
    if found is not None:
        return found
    c = CONTACTS.alias("c")
    moments: dict[str, Callable[[datetime], Any]] = {}
    moment = bindparam("now", type_=EVENTS.c.timestamp.type)
    rows = (
        func.jsonb_array_elements(cast(bindparam("concerned", type_=String), JSONB))
        .table_valued(column("value", JSONB))
        .alias("j")
    )
    concerned = select(
        rows.c.value.op("->>")(literal_column("0")).label("id"),
        rows.c.value.op("->>")(literal_column("1")).label("flags"),
    ).cte("concerned")
    columns = []
    for position, segment in enumerate(level.segments):
        compiler = _Compiler("postgresql", now, c, prefix=f"s{position}", probe=True)
        inside = compiler.condition(segment.condition)
        moments.update(compiler.moments)
        wanted = func.substr(concerned.c.flags, literal_column(str(position + 1)), 1) == "1"
        columns.append(
            case((wanted, func.coalesce(inside, false())), else_=None).label(f"s{position}")
        )
    evaluated = (
        select(c.c.id.label("contact_id"), *columns)
        .select_from(concerned.join(c, c.c.id == concerned.c.id))
        .cte("evaluated")
        # Once per contact: a CTE read once would be inlined, its CASE evaluated twice.
        .prefix_with("MATERIALIZED")
    )
    m = MEMBERS.alias("m")
    pairs = union_all(
        *(
            select(
                evaluated.c.contact_id,
                literal(segment.key, String).label("k"),
                literal_column(str(position)).label("position"),
                evaluated.c[f"s{position}"].label("inside"),
                # The membership row if there is one, found by its primary key: a scalar
                # subquery is probed for each pair, never hashed over a whole segment.
                select(literal_column("m.ctid", _TID))
                .where(m.c.segment_key == segment.key, m.c.contact_id == evaluated.c.contact_id)
                .scalar_subquery()
                .label("member"),
            ).where(evaluated.c[f"s{position}"].is_not(None))
            for position, segment in enumerate(level.segments)
        )
    ).cte("pairs")
    entering = (
        postgresql.insert(MEMBERS)
        .from_select(
            ["segment_key", "contact_id", "entered_at"],
            select(pairs.c.k, pairs.c.contact_id, moment)
            .where(pairs.c.inside, pairs.c.member.is_(None))
            .order_by(pairs.c.contact_id, pairs.c.k),
        )
        .on_conflict_do_nothing()
        .returning(MEMBERS.c.segment_key, MEMBERS.c.contact_id)
        .cte("entering")
    )
    # The rows of the members outside now, by their row ids (a TID scan: a join with the
    # pairs could be planned as a scan of every member). The statement's snapshot found them;
    # one deleted meanwhile by a recompute is skipped, as a DELETE by key would skip it.
    doomed = (
        select(func.array_agg(pairs.c.member))
        .where(not_(pairs.c.inside), pairs.c.member.is_not(None))
        .scalar_subquery()
    )
    leaving = (
        delete(MEMBERS)
        .where(literal_column("segment_members.ctid", _TID) == any_(cast(doomed, _TIDS)))
        .returning(MEMBERS.c.segment_key, MEMBERS.c.contact_id)
        .cte("leaving")
    )
    changes = union_all(
        select(entering.c.segment_key, entering.c.contact_id, literal_column("0").label("kind")),
        select(leaving.c.segment_key, leaving.c.contact_id, literal_column("1").label("kind")),
    ).cte("changes")
    name = case((changes.c.kind == 0, SEGMENT_ENTERED), else_=SEGMENT_EXITED)
    ordered = changes.join(
        pairs, and_(pairs.c.k == changes.c.segment_key, pairs.c.contact_id == changes.c.contact_id)
    )
    stored = (
        postgresql.insert(EVENTS)
        .from_select(
            ["message_id", "contact_id", "name", "properties", "timestamp", "received_at"],
            select(
                # As ``_record_all`` names them: unique per change and per statement, so they
                # need no ``event_ids`` row (no client sends them again).
                func.concat(
                    "segment:",
                    changes.c.segment_key,
                    ":",
                    name,
                    ":",
                    changes.c.contact_id,
                    ":",
                    bindparam("batch", type_=String),
                ),
                changes.c.contact_id,
                name,
                func.jsonb_build_object("segment", changes.c.segment_key),
                moment,
                moment,
            )
            .select_from(ordered)
            .order_by(pairs.c.position, changes.c.kind, changes.c.contact_id),
        )
        .returning(EVENTS.c.id, EVENTS.c.contact_id)
        .cte("stored")
    )
    outbox = OutboxEntry.__table__
    queued = (
        postgresql.insert(outbox)
        .from_select(
            ["event_id", "contact_id", "attempts", "created_at", "received_at"],
            select(stored.c.id, stored.c.contact_id, literal_column("0"), moment, moment).order_by(
                stored.c.id
            ),
        )
        .returning(outbox.c.id)
        .cte("queued")
    )
    # ``queued`` is named by nothing the answer reads: added, or it would not be written.
    statement = select(changes.c.segment_key, changes.c.contact_id, changes.c.kind).add_cte(queued)
    sql = _inline_sql(statement, dialect, {"concerned", "now", "batch", *moments})
    found = _EVALUATIONS[key] = _Evaluation(sql, moments)
    return found


def _inline_sql(statement: Any, dialect: Any, runtime: set[str]) -> str:
    """The statement as the driver's SQL, compiled once: every constant of the conditions
    (trait and event names, compared values) written in by SQLAlchemy's literal rendering,
    quoting included, and only ``runtime`` left as parameters. Executed as is, it costs no
    compilation, cache key or processing of a hundred constant parameters per ingest."""

    class Inline(dialect.statement_compiler):  # type: ignore[name-defined,misc]
        def visit_bindparam(self, bindparam: Any, **kw: Any) -> str:
            kw["literal_binds"] = bindparam.key not in runtime
            return super().visit_bindparam(bindparam, **kw)

    return Inline(dialect, statement).string


def _apply_level_postgres(
    session: Session, level: _Level, concerned: dict[str, set[int]], now: datetime
) -> dict[str, Changes]:
    """Evaluate the level's segments for the contacts concerned, apply the differences and
    store and queue their events: one statement (``_level_statement``). By segment key, in
    the level's order, each with its contacts sorted."""
    connection = session.connection()
    evaluation = _level_statement(level, now, connection.dialect)
    width = len(level.segments)
    document = json.dumps(
        [
            [contact, "".join("1" if p in positions else "0" for p in range(width))]
            for contact, positions in sorted(concerned.items())
        ],
        separators=(",", ":"),
    )
    params: dict[str, Any] = {name: value_at(now) for name, value_at in evaluation.moments.items()}
    params.update(concerned=document, now=now, batch=uuid.uuid4().hex)
    found: dict[str, Changes] = {}
    # The driver's SQL on the session's connection (its events see it as any statement).
    moves = 0
    for key, contact, kind in connection.exec_driver_sql(evaluation.statement, params):
        change = found.setdefault(key, Changes())
        (change.exited if kind else change.entered).append(contact)
        moves += 1
    outbox_store.notify(session, moves)  # each move queued its segment event
    order = {segment.key: position for position, segment in enumerate(level.segments)}
    answer = {}
    for key in sorted(found, key=order.__getitem__):
        change = found[key]
        change.entered.sort()
        change.exited.sort()
        answer[key] = change
    return answer


def hold_contacts(
    session: Session, *, profile: Iterable[str], events: Iterable[tuple[str, str]]
) -> dict[str, Segment]:
    """Before an ingest writes anything, when segments exist: the contacts whose memberships
    the call can change (``profile``: identified contacts; ``events``: (contact, event name)
    of tracks, for names some segment counts) get a row if they have none (a segment holds
    contacts; track does not create them otherwise) and are locked in id order, in one
    statement on Postgres. Each contact's memberships then change under its own lock: two
    ingests for one contact are evaluated one after the other (each seeing the other's
    events), and two naming the same contacts queue instead of deadlocking. Identified
    contacts are always among them, so the ingest's own identify locks come after these, in
    the same order.
    Answers the segments (for ``react``); none, and nothing done, when there is no segment."""
    segments = definitions(session)
    if not segments:
        return segments
    counted = set().union(*(dependencies(s).events for s in segments.values()))
    ids = sorted({*profile, *(contact for contact, name in events if name in counted)})
    if not ids:
        return segments
    if session.get_bind().dialect.name == "postgresql":
        # On the session's connection: the ORM's result machinery has nothing to read.
        document = json.dumps(ids, separators=(",", ":"))
        session.connection().execute(_HOLD_POSTGRES, {"ids": document, "now": utcnow()})
    else:
        _ensure_contacts(session, set(ids))
    return segments


# Created if missing or locked if present, row by row in id order, in one statement: ON
# CONFLICT DO UPDATE locks the row it finds (as FOR UPDATE does) even when its WHERE lets no
# update happen, so nothing is written for a contact that exists. One order for creating and
# locking: two ingests naming the same contacts queue instead of deadlocking.
_HOLD_POSTGRES = text(
    """
    INSERT INTO contacts (id, timezone, traits, tags, scores, unsubscribed, created_at, updated_at)
    SELECT id, 'UTC', '{}'::jsonb, '[]'::jsonb, '{}'::jsonb, '[]'::jsonb, :now, :now
    FROM jsonb_array_elements_text(CAST(:ids AS jsonb)) AS t(id) ORDER BY id
    ON CONFLICT (id) DO UPDATE SET updated_at = contacts.updated_at WHERE false
    """
)


def adopt_event_contacts(session: Session) -> None:
    """A row for every contact known only from its events (tracked before any segment
    existed), so that a backfill sees them: one set-based statement."""
    postgres = session.get_bind().dialect.name == "postgresql"
    insert = postgresql.insert if postgres else sqlite.insert

    def empty(text: str) -> Any:
        # JSON literals as the column stores them (a bound value would be encoded again).
        raw = literal_column(f"'{text}'")
        return cast(raw, JSONB) if postgres else raw

    known = select(literal(1)).select_from(CONTACTS).where(CONTACTS.c.id == EVENTS.c.contact_id)
    orphans = select(EVENTS.c.contact_id).where(not_(exists(known))).distinct().subquery("o")
    now = utcnow()
    rows = select(
        orphans.c.contact_id,
        empty("{}"),
        empty("[]"),
        empty("{}"),
        empty("[]"),
        literal("UTC"),
        type_coerce(now, CONTACTS.c.created_at.type),
        type_coerce(now, CONTACTS.c.updated_at.type),
        # A WHERE: without one SQLite takes the ON of ON CONFLICT for a join constraint.
    ).where(orphans.c.contact_id.is_not(None))
    columns = ["id", "traits", "tags", "scores", "unsubscribed", "timezone"]
    session.execute(
        insert(CONTACTS)
        .from_select([*columns, "created_at", "updated_at"], rows)
        .on_conflict_do_nothing()
    )


def _ensure_contacts(session: Session, contact_ids: set[str]) -> None:
    """A row for each of these contacts, in id order (SQLite; Postgres does it in
    ``_HOLD_POSTGRES``)."""
    session.execute(
        sqlite.insert(CONTACTS).on_conflict_do_nothing(),
        [
            {"id": contact, "traits": {}, "tags": [], "scores": {}, "unsubscribed": []}
            for contact in sorted(contact_ids)
        ],
    )


def users(session: Session, key: str) -> list[str]:
    """Keys of the segments that name ``key``."""
    return [
        other.key
        for other in definitions(session).values()
        if key in dependencies(other).segments and other.key != key
    ]


def _names_segment(document: Any, key: str) -> bool:
    """Whether a journey document names the segment: ``trigger: {segment: KEY}``,
    ``when: {segment: KEY}``, or a rule on the ``segment`` property of a segment event."""
    if isinstance(document, dict):
        if document.get("segment") == key:
            return True
        if document.get("field") == "event.segment" and (
            document.get("eq") == key or key in (document.get("in") or [])
        ):
            return True
        return any(_names_segment(value, key) for value in document.values())
    if isinstance(document, list):
        return any(_names_segment(item, key) for item in document)
    return False


def journeys_naming(session: Session, key: str) -> list[str]:
    """Journeys not archived whose published version or draft names segment ``key``."""
    found = []
    query = select(JourneyRow).where(JourneyRow.status != "archived").order_by(JourneyRow.key)
    for row in session.scalars(query):
        documents: list[Any] = [row.draft]
        if row.latest_version is not None:
            stored = session.get(JourneyVersion, (row.key, row.latest_version))
            documents.append(stored.spec if stored is not None else None)
        if row.latest_version is not None and any(_names_segment(d, key) for d in documents):
            found.append(row.key)
    return found


def remove_for_contact(session: Session, contact_id: str) -> int:
    """Erasure: the contact's memberships go with the profile; the number of rows deleted."""
    result = session.execute(delete(MEMBERS).where(MEMBERS.c.contact_id == contact_id))
    return result.rowcount or 0
