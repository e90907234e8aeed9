"""Records that cross the boundary between the API, workflows and activities."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JourneyEvent(Record):
    """An app or delivery event as a run sees it; ``id`` is the Segment messageId."""

    id: str
    name: str
    properties: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime | None = None


class ContactSnapshot(Record):
    """What a run knows of its contact; refreshed by activities, recorded in history."""

    id: str
    email: str | None = None
    phone: str | None = None
    timezone: str = "UTC"
    traits: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    unsubscribed: list[str] = Field(default_factory=list)
    segments: list[str] = Field(
        default_factory=list,
        description="Segments the contact is in, as loaded for a branch (`when: {segment: ...}`).",
    )

    def condition_context(self) -> dict[str, Any]:
        """The ``contact``, ``tags``, ``scores`` and ``segments`` parts of a condition's context."""
        contact = {**self.traits, "id": self.id, "email": self.email, "phone": self.phone}
        contact["timezone"] = self.timezone
        return {
            "contact": contact,
            "tags": list(self.tags),
            "scores": dict(self.scores),
            "segments": list(self.segments),
        }


class TraceEntry(Record):
    """One line of a run's step-by-step trace; also a funnel row in ``step_events``."""

    seq: int
    at: datetime
    step: str | None
    kind: str
    detail: str | None = None


# The seq of a run's first trace entry (its first step entered), which a starter that admits
# the run records for it.
FIRST_SEQ = 1
