"""What changes between two versions of a journey, step by step, in words."""

from __future__ import annotations

from typing import Any

from temporal_journeys.journeys.spec import Journey


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flat(inner, f"{prefix}.{key}" if prefix else key))
        return flat
    return {prefix: value}


def diff(old: Journey | None, new: Journey) -> list[str]:
    """Lines such as ``+ step discount``, ``~ step reminder: send.template a -> b``; empty when
    nothing changes."""
    if old is None:
        return [f"+ journey {new.key} ({len(new.steps)} steps)"]
    lines = []
    old_doc, new_doc = old.model_dump(mode="json"), new.model_dump(mode="json")
    for field in sorted(set(old_doc) | set(new_doc) - {"steps"}):
        if field != "steps" and old_doc.get(field) != new_doc.get(field):
            lines.append(f"~ {field}: {old_doc.get(field)!r} -> {new_doc.get(field)!r}")
    old_steps = {s["id"]: s for s in old_doc["steps"]}
    new_steps = {s["id"]: s for s in new_doc["steps"]}
    for step_id in new_steps.keys() - old_steps.keys():
        lines.append(f"+ step {step_id}")
    for step_id in old_steps.keys() - new_steps.keys():
        lines.append(f"- step {step_id}")
    for step_id in [s["id"] for s in new_doc["steps"] if s["id"] in old_steps]:
        before, after = _flat(old_steps[step_id]), _flat(new_steps[step_id])
        for path in sorted(set(before) | set(after)):
            if before.get(path) != after.get(path):
                lines.append(
                    f"~ step {step_id}: {path} {before.get(path)!r} -> {after.get(path)!r}"
                )
    old_order = [s for s in old_steps if s in new_steps]
    new_order = [s for s in new_steps if s in old_steps]
    if old_order != new_order:
        lines.append("~ step order: " + ", ".join(new_order))
    return lines
