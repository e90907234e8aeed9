"""The one measure of nesting and keys that the door limits and the runs' own bound share."""

from __future__ import annotations

from temporal_journeys.journeys.json_shape import Shape, shape


def nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_objects_and_lists_count_as_levels_and_scalars_do_not():
    assert shape(7) == Shape(depth=0, keys=0)
    assert shape({}) == Shape(depth=1, keys=0)
    assert shape({"a": [1, {"b": 2, "c": [3]}]}) == Shape(depth=4, keys=3)


def test_a_value_thousands_deep_is_measured_without_recursion():
    assert shape(nested(5000)) == Shape(depth=5000, keys=4999)


def test_the_walk_stops_once_the_value_is_known_to_be_too_deep():
    measured = shape(nested(5000), stop_deeper_than=32)
    assert measured.depth == 33
    assert measured.keys < 40
