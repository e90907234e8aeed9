"""Pure checks and traversal of a journey's step graph; no Temporal, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from temporal_journeys.journeys.conditions import history_conditions
from temporal_journeys.journeys.spec import (
    HOLDOUT,
    BranchStep,
    EnterStep,
    ExitStep,
    Journey,
    SendStep,
    SplitStep,
    Step,
    WaitForStep,
    WaitStep,
    step_kind,
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, at a JSON path such as ``$.steps[2].wait_for.on_timeout``."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


def targets(journey: Journey, step: Step) -> Iterator[tuple[str, str | None]]:
    """Every (relative JSON path, target step id) a step can go to; ``None`` means exit. The
    path is where the target is written, or where it would be when it is a default."""
    if isinstance(step, ExitStep):
        return
    following = journey.following(step.id)
    fallback = ("next", step.next) if step.next else ("next", following)
    if isinstance(step, BranchStep):
        for index, case in enumerate(step.branch.cases):
            yield f"branch.cases[{index}].next", case.next
        # As the interpreter does: no case matched and no default goes to `next`, then on.
        if step.branch.default:
            yield "branch.default", step.branch.default
        else:
            yield fallback
        return
    if isinstance(step, SplitStep):
        # A variant without its own `next` goes to the split's `next`, then on.
        for index, variant in enumerate(step.split.variants):
            if variant.next:
                yield f"split.variants[{index}].next", variant.next
        if any(not variant.next for variant in step.split.variants):
            yield fallback
        if step.split.holdout is not None:
            yield "split.holdout.next", step.split.holdout.next
        return
    yield fallback
    if isinstance(step, WaitForStep) and step.on_timeout:
        yield "on_timeout", step.on_timeout
    if isinstance(step, SendStep) and step.on_failure:
        yield "on_failure", step.on_failure


def _is_wait(step: Step) -> bool:
    return isinstance(step, WaitStep | WaitForStep)


def check(
    journey: Journey,
    templates: Iterable[str] | None = None,
    journeys: Iterable[str] | None = None,
) -> list[Problem]:
    """Every graph problem of a parsed journey. ``templates`` and ``journeys``, when given, are
    the known keys that send and enter steps must name."""
    problems: list[Problem] = []
    index_of: dict[str, int] = {}
    for index, step in enumerate(journey.steps):
        if step.id in index_of:
            problems.append(Problem(f"$.steps[{index}].id", f"duplicate step id {step.id!r}"))
        index_of.setdefault(step.id, index)

    steps = journey.step_map()
    for index, step in enumerate(journey.steps):
        for path, target in targets(journey, step):
            if target is not None and target not in steps:
                problems.append(Problem(f"$.steps[{index}].{path}", f"unknown step {target!r}"))
        problems.extend(_step_problems(journey, index, step, templates, journeys))

    problems.extend(_history_in_event_filters(journey))
    problems.extend(_unreachable(journey, index_of))
    problems.extend(_loops_without_wait(journey, index_of))
    return problems


def _step_problems(
    journey: Journey,
    index: int,
    step: Step,
    templates: Iterable[str] | None,
    journeys: Iterable[str] | None,
) -> Iterator[Problem]:
    at = f"$.steps[{index}]"
    steps = journey.step_map()
    if (
        isinstance(step, SendStep)
        and templates is not None
        and step.send.template not in set(templates)
    ):
        yield Problem(f"{at}.send.template", f"unknown template {step.send.template!r}")
    if isinstance(step, EnterStep):
        if step.enter.journey == journey.key:
            yield Problem(f"{at}.enter.journey", "a journey cannot enter itself")
        elif journeys is not None and step.enter.journey not in set(journeys):
            yield Problem(f"{at}.enter.journey", f"unknown journey {step.enter.journey!r}")
    if isinstance(step, WaitForStep) and step.wait_for.message is not None:
        source = steps.get(step.wait_for.message)
        if not isinstance(source, SendStep):
            yield Problem(
                f"{at}.wait_for.message",
                f"{step.wait_for.message!r} is not a send step of this journey",
            )
    if isinstance(step, SplitStep):
        names = [variant.name for variant in step.split.variants]
        if len(set(names)) != len(names):
            yield Problem(f"{at}.split.variants", "variant names must be unique")
        for number, name in enumerate(names):
            if name == HOLDOUT:
                yield Problem(
                    f"{at}.split.variants[{number}].name",
                    f"{HOLDOUT!r} names the holdout share; call the variant something else",
                )


def _history_in_event_filters(journey: Journey) -> Iterator[Problem]:
    """Event filters are checked as events arrive, inside the workflow, where the event store
    cannot be asked: history conditions belong in branches."""
    filters: list[tuple[str, object]] = [
        ("$.trigger.where", getattr(journey.trigger, "where", None))
    ]
    if journey.goal is not None:
        filters.append(("$.goal.where", journey.goal.where))
    filters += [(f"$.exit_on[{i}].where", rule.where) for i, rule in enumerate(journey.exit_on)]
    filters += [
        (f"$.steps[{i}].wait_for.where", step.wait_for.where)
        for i, step in enumerate(journey.steps)
        if isinstance(step, WaitForStep)
    ]
    for path, condition in filters:
        if condition is not None and history_conditions(condition):
            yield Problem(path, "event history conditions are allowed in branch cases only")


def _walk(journey: Journey, start: str) -> set[str]:
    steps = journey.step_map()
    seen: set[str] = set()
    todo = [start]
    while todo:
        current = todo.pop()
        if current in seen or current not in steps:
            continue
        seen.add(current)
        todo.extend(t for _, t in targets(journey, steps[current]) if t is not None)
    return seen


def _unreachable(journey: Journey, index_of: dict[str, int]) -> Iterator[Problem]:
    reached = _walk(journey, journey.steps[0].id)
    for step_id, index in index_of.items():
        if step_id not in reached:
            yield Problem(f"$.steps[{index}]", f"step {step_id!r} can never be reached")


def _loops_without_wait(journey: Journey, index_of: dict[str, int]) -> Iterator[Problem]:
    """A cycle made only of instant steps would spin forever without yielding to a timer.

    One problem per group of steps that can loop among themselves (a strongly connected
    component of the instant steps), at its first step in document order, naming the shortest
    such loop through it. Linear in the size of the graph, whatever its shape."""
    steps = journey.step_map()
    instant = [sid for sid in index_of if not _is_wait(steps[sid])]
    allowed = set(instant)
    edges = {sid: [t for _, t in targets(journey, steps[sid]) if t in allowed] for sid in instant}
    for component in _strongly_connected(instant, edges):
        first = min(component, key=index_of.__getitem__)
        cycle = _shortest_cycle(first, set(component), edges)
        if cycle:
            yield Problem(
                f"$.steps[{index_of[first]}]", "loop with no wait in it: " + " -> ".join(cycle)
            )


def _strongly_connected(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on long chains of steps)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in nodes:
        if root in order:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                order[node] = low[node] = len(order)
                stack.append(node)
                on_stack.add(node)
            descended = False
            for next_position in range(position, len(edges[node])):
                target = edges[node][next_position]
                if target not in order:
                    work.append((node, next_position + 1))
                    work.append((target, 0))
                    descended = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], order[target])
            if descended:
                continue
            if low[node] == order[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def _shortest_cycle(start: str, within: set[str], edges: dict[str, list[str]]) -> list[str]:
    """The shortest path from ``start`` back to itself inside ``within``; empty if none."""
    parent: dict[str, str] = {}
    queue = [start]
    for current in queue:
        for target in edges[current]:
            if target == start:
                path = [current]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if target in within and target not in parent and target != start:
                parent[target] = current
                queue.append(target)
    return []


def describe(step: Step) -> str:
    """A step's kind and id, for traces and diagrams."""
    return f"{step_kind(step)} {step.id}"
