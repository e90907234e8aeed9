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
    channel: Literal["email", "sms", "webhook", "push", "whatsapp"]
    subject: str | None = Field(default=None, max_length=998)
    html: str | None = None
    text: str | None = None
    provider_template_id: str | None = Field(
        default=None,
        max_length=200,
        description="SendGrid dynamic template id (email); Twilio Content SID (whatsapp: HX...).",
    )
    url: str | None = Field(
        default=None,
        max_length=2000,
        description="Webhook channel: where to POST (Liquid); required for that channel.",
    )


class TemplateOut(TemplateBody):
    key: str
    updated_at: Utc


class PreviewBody(Admin):
    """Whom to render a template for: a stored contact, or sample traits; plus the data."""

    contact: Id | None = Field(
        default=None, description="A stored contact's userId: its traits, tags and profile."
    )
    traits: dict[str, Any] | None = Field(
        default=None,
        description="Sample traits instead of a contact (`email`, `phone`, `timezone` and `id` "
        "are its profile fields).",
    )
    data: dict[str, Any] = Field(default_factory=dict, description="The send step's `data.*`.")
    event: dict[str, Any] = Field(
        default_factory=dict, description="The trigger event's properties (`event.*`)."
    )

    @model_validator(mode="after")
    def _one_person(self) -> PreviewBody:
        if self.contact is not None and self.traits is not None:
            raise ValueError("give `contact` or `traits`, not both")
        return self


class PreviewOut(BaseModel):
    template: str
    channel: str
    contact_id: str
    subject: str | None
    text: str | None
    html: str | None
    url: str | None = Field(description="Webhook templates: the rendered URL.")
    headers: dict[str, str] = Field(
        description="Email: the headers a send adds (List-Unsubscribe for this contact)."
    )


class SendTestBody(PreviewBody):
    to: str = Field(
        min_length=3,
        max_length=320,
        description="Where the test goes: an email address, a phone number (+E.164) for SMS or "
        "WhatsApp, or a registered device token for push.",
    )


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
    subscriptions: dict[str, bool] = Field(
        default_factory=dict,
        description="Every topic with whether the contact receives it: their choice (identify "
        "trait topic_subscriptions, the preference page, PATCH .../topics) or the topic's "
        "default (opt_out: yes, opt_in: no).",
    )


class TopicOut(BaseModel):
    key: str
    name: str
    description: str | None
    type: Literal["opt_out", "opt_in"]
    created_at: Utc
    updated_at: Utc


class ErasureOut(BaseModel):
    """What erasing a contact did."""

    runs_ended: int = Field(description="Runs of the contact that were still going.")
    rows_deleted: dict[str, int] = Field(
        description="Rows removed, by kind (the contact, its events, messages, queued events)."
    )
    key_destroyed: bool = Field(
        description="Its data key was destroyed: what Temporal's histories hold of the contact "
        "can no longer be decrypted. False when payloads are not encrypted."
    )


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
    text: str | None = Field(
        default=None,
        validation_alias="body",
        description="The rendered text part (an SMS's body, a webhook's body when it has one).",
    )
    html: str | None = Field(default=None, description="The rendered HTML part, if any.")
    headers: dict[str, str] | None = Field(
        default=None,
        description="Headers the provider was asked to send (email: List-Unsubscribe, ...).",
    )
    test: bool = Field(default=False, description="A template's test send: out of stats and caps.")
    status: str
    error: str | None
    status_history: list[Any]
    created_at: Utc


class ParkedOut(BaseModel):
    id: int = Field(description="The outbox entry; retry and drop name it.")
    event_id: int
    message_id: str
    contact_id: str
    event: str = Field(description="The event's name.")
    attempts: int
    error: str | None = Field(description="Why the relay could not deliver it.")
    parked_at: Utc
    received_at: Utc


class SegmentOut(BaseModel):
    key: str
    name: str
    version: int = Field(description="Moves on each time the definition changes.")
    backfilled: bool = Field(description="The backfill of this version has finished.")
    backfill_workflow_id: str = Field(description="Its progress is in the run's details.")
    refreshed_by_schedule: str | None = Field(
        default=None, description="The Temporal Schedule recomputing time-based conditions."
    )
    definition: dict[str, Any]


class SegmentMemberOut(BaseModel):
    userId: str
    entered_at: Utc


class SegmentMembersPage(BaseModel):
    members: list[SegmentMemberOut]
    next: str | None = Field(description="Pass as `after` for the next page; null at the end.")


class SegmentCount(BaseModel):
    key: str
    count: int


class WebPushKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # base64url, padded or not: 65 bytes (an uncompressed P-256 point) and 16 bytes.
    p256dh: str = Field(pattern=r"^[A-Za-z0-9_-]{86,87}={0,2}$")
    auth: str = Field(pattern=r"^[A-Za-z0-9_-]{21,22}={0,2}$")


class WebPushSubscription(BaseModel):
    """A browser's ``PushSubscription.toJSON()`` (RFC 8030 endpoint, RFC 8291 keys)."""

    model_config = ConfigDict(extra="ignore")  # expirationTime and whatever browsers add

    endpoint: str = Field(min_length=1, max_length=1024, pattern=r"^https?://[\x21-\x7e]+$")
    keys: WebPushKeys


class DeviceIn(BaseModel):
    """A device the app registers for push: its FCM registration token, or (platform
    ``webpush``) a browser's push subscription, whose endpoint is then its token."""

    model_config = ConfigDict(extra="forbid")

    userId: Id
    token: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        pattern=r"^[\x21-\x7e]+$",
        description="The FCM registration token the app got from the Firebase SDK.",
    )
    platform: Literal["ios", "android", "web", "webpush"]
    subscription: WebPushSubscription | None = None

    @model_validator(mode="after")
    def _token_or_subscription(self) -> DeviceIn:
        if self.platform == "webpush":
            if self.subscription is None:
                raise ValueError(
                    "subscription is required for platform webpush: the browser's "
                    "PushSubscription.toJSON() (endpoint and keys)"
                )
            if self.token is not None and self.token != self.subscription.endpoint:
                raise ValueError("token: a webpush device's token is its subscription.endpoint")
            self.token = self.subscription.endpoint
        elif self.subscription is not None:
            raise ValueError("subscription is for platform webpush only")
        elif self.token is None:
            raise ValueError("token is required for platform ios, android and web")
        return self

    @property
    def device_token(self) -> str:
        assert self.token is not None  # set by the validator
        return self.token


class DeviceOut(BaseModel):
    userId: str
    token: str
    platform: str
    updated_at: Utc


class BroadcastIn(BaseModel):
    """``POST /v1/broadcasts``: a segment, then a template (on its channel) or a journey."""

    model_config = ConfigDict(extra="forbid")

    segment: str = Field(min_length=1, max_length=100, description="Its members, as of the start.")
    template: str | None = Field(default=None, max_length=100, description="A one-off message.")
    channel: Literal["email", "sms", "webhook", "push", "whatsapp"] | None = Field(
        default=None, description="Defaults to the template's channel; must match it if given."
    )
    journey: str | None = Field(
        default=None, max_length=100, description="Enter each member into its live version."
    )
    topic: str | None = Field(
        default=None, max_length=100, description="Only the topic's subscribers get it."
    )
    data: dict[str, Any] = Field(default_factory=dict, description="`{{ data.* }}` in Liquid.")
    send_at: datetime | None = Field(
        default=None, description="When to start (with a UTC offset); null: now."
    )
    local_time: str | None = Field(
        default=None,
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="HH:MM: each contact at this time in their own zone, at its first "
        "occurrence from the start.",
    )
    rate_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    batch_size: int = Field(default=500, ge=1, le=5000, description="Recipients per activity.")


class BroadcastOut(BaseModel):
    id: str
    workflow_id: str = Field(description="Find it in the Temporal UI; progress in its details.")
    segment: str
    template: str | None
    channel: str | None
    journey: str | None
    topic: str | None
    send_at: Utc | None
    local_time: str | None
    rate_per_minute: int | None
    status: str
    total: int | None = Field(description="Recipients in the snapshot; null before the start.")
    counts: dict[str, int] = Field(description="Recipients by outcome (queued, sent, ...).")
    reasons: dict[str, int] = Field(description="Why recipients were skipped or failed.")
    created_at: Utc
    started_at: Utc | None
    finished_at: Utc | None


class BroadcastRecipientOut(BaseModel):
    userId: str
    status: str
    due_at: Utc
    message_id: str | None


class BroadcastRecipientsPage(BaseModel):
    recipients: list[BroadcastRecipientOut]
    next: str | None = Field(description="Pass as `after` for the next page; null at the end.")
