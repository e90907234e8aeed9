"""Request and response bodies. Ingestion speaks the Segment spec and tolerates the extra
fields that Segment and RudderStack libraries add; admin bodies reject unknown fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

MAX_BATCH = 2500


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands stored times back without a zone; they are UTC.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


Utc = Annotated[datetime, AfterValidator(_utc)]
Id = Annotated[str, Field(min_length=1, max_length=200)]


class SegmentCall(BaseModel):
    model_config = ConfigDict(extra="allow")

    userId: Id | None = None
    anonymousId: Id | None = None
    messageId: Id | None = None
    timestamp: datetime | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _someone(self) -> SegmentCall:
        if not (self.userId or self.anonymousId):
            raise ValueError("userId or anonymousId is required")
        return self

    @property
    def contact_id(self) -> str:
        return self.userId or f"anonymous:{self.anonymousId}"


class TrackCall(SegmentCall):
    type: Literal["track"] = "track"
    event: str = Field(min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)


class IdentifyCall(SegmentCall):
    type: Literal["identify"] = "identify"
    traits: dict[str, Any] = Field(default_factory=dict)


class PageCall(SegmentCall):
    """Page and screen views are stored as events named `page` and `screen`."""

    type: Literal["page", "screen"]
    name: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class IgnoredCall(BaseModel):
    """Group and alias calls are accepted so that whole batches go through, and not stored."""

    model_config = ConfigDict(extra="allow")
    type: Literal["group", "alias"]


BatchCall = Annotated[
    TrackCall | IdentifyCall | PageCall | IgnoredCall, Field(discriminator="type")
]


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    batch: list[BatchCall] = Field(max_length=MAX_BATCH)
    writeKey: str | None = None


class Accepted(BaseModel):
    accepted: int = Field(description="Calls stored now.")
    duplicates: int = Field(description="Calls whose messageId was stored before.")
    ignored: int = Field(default=0, description="Group and alias calls, accepted and not stored.")


class Admin(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemplateBody(Admin):
    channel: Literal["email", "sms", "webhook"]
    subject: str | None = Field(default=None, max_length=998)
    html: str | None = None
    text: str | None = None
    provider_template_id: str | None = Field(
        default=None, max_length=200, description="SendGrid dynamic template id (email)."
    )
    url: str | None = Field(
        default=None,
        max_length=2000,
        description="Webhook channel: where to POST (Liquid); required for that channel.",
    )


class TemplateOut(TemplateBody):
    key: str
    updated_at: Utc


class ContactOut(BaseModel):
    id: str
    email: str | None
    phone: str | None
    timezone: str
    traits: dict[str, Any]
    tags: list[str]
    scores: dict[str, float]
    unsubscribed: list[str]
    created_at: Utc


class EnrollmentOut(BaseModel):
    journey: str
    version: int
    workflow_id: str
    status: str
    step: str | None
    variant: str | None
    converted: bool
    reason: str | None
    started_at: Utc
    ended_at: Utc | None
    waiting_for: str | None = Field(default=None, description="From the live run, if running.")
    until: Utc | None = None


class DraftOut(BaseModel):
    key: str
    name: str
    status: str
    latest_version: int | None
    draft: dict[str, Any] | None


class MigrationBody(Admin):
    steps: dict[str, str] = Field(description="Step of the old version -> step of the new one.")
    from_version: int | None = Field(
        default=None, description="Only runs on this version; all older versions by default."
    )


class PublishBody(Admin):
    migrate: MigrationBody | None = None


class PublishOut(BaseModel):
    key: str
    version: int
    migrated: int = 0
    not_migrated: list[dict[str, str]] = Field(default_factory=list)


class VersionOut(BaseModel):
    version: int
    published_at: Utc
    spec: dict[str, Any]


class EnrollBody(Admin):
    userIds: list[Id] = Field(min_length=1, max_length=1000)
    properties: dict[str, Any] = Field(
        default_factory=dict, description="Given to the run as its trigger event's properties."
    )


class EnrollResult(BaseModel):
    userId: str
    workflow_id: str | None = None
    error: str | None = None


class MessageOut(BaseModel):
    id: str
    contact_id: str
    journey_key: str | None
    version: int | None
    step_id: str | None
    channel: str
    template: str
    provider: str
    to_address: str | None
    subject: str | None
    status: str
    error: str | None
    status_history: list[Any]
    created_at: Utc
