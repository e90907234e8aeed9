"""How deep a JSON value nests and how many keys it holds: what the API's door limits and a
run's own bound on the events it carries both measure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Shape:
    depth: int
    """Levels of objects and lists on the deepest path: ``{}`` is 1 deep, a scalar 0."""
    keys: int
    """Keys of every object in the value (counted only as far as it was walked)."""


def shape(value: Any, *, stop_deeper_than: int | None = None) -> Shape:
    """The value's shape, walked without recursion so that a value nested thousands deep is
    measured rather than exhausting the stack; with ``stop_deeper_than``, the walk ends as soon
    as it is known to be deeper than that (workflow code only needs to know that much)."""
    depth = keys = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, level = pending.pop()
        if isinstance(node, dict):
            keys += len(node)
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        depth = max(depth, level)
        if stop_deeper_than is not None and depth > stop_deeper_than:
            break
        pending.extend((child, level + 1) for child in children)
    return Shape(depth, keys)
