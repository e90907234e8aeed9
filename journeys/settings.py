"""The one settings class shared by the API, the worker, the CLI and Alembic."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretBytes, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from temporal_journeys.journeys.timing import zone

DEFAULT_DATA_DIR = Path(".data")
QUIET_HOURS = r"^$|^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"
ENCRYPTION_KEYS = "JOURNEYS_ENCRYPTION_KEYS"
ENCRYPTION_KEY_BYTES = 32  # AES-256
# Key ids travel in every payload's metadata: short, and free of the separators ``,`` and ``:``.
KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ORIGIN = re.compile(r"https?://[^/\s?#]+")


class MissingSecretKey(RuntimeError):
    pass


class Settings(BaseSettings):
    """Read from the environment with the ``JOURNEYS_`` prefix (e.g. ``JOURNEYS_DATABASE_URL``)."""

    model_config = SettingsConfigDict(env_prefix="JOURNEYS_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DATA_DIR / 'journeys.db'}",
        description="SQLAlchemy URL; postgresql:// URLs are served by psycopg 3.",
    )
    temporal_address: str = Field(default="127.0.0.1:7233", description="Temporal frontend.")
    temporal_namespace: str = "default"
    temporal_ui_url: str = Field(
        default="http://127.0.0.1:8233",
        description="The Temporal UI, for links from the operator page (`/ui`) and "
        "`journeys runs` to a contact's runs.",
    )
    task_queue: str = "journeys"
    email_from: str = "journeys@example.com"
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="Base URL of the API as seen from outside."
    )
    max_cached_workflows: int = 1000
    workflow_sandbox: bool = Field(
        default=True,
        description="Run the journey workflow inside the Temporal SDK's sandbox, which refuses "
        "non-deterministic calls at run time. Off, a worker spends about a quarter less CPU per "
        "run; the test suite runs the interpreter sandboxed either way.",
    )
    event_buffer_size: int = Field(
        default=100, description="Recent events a run keeps for wait_for steps that start later."
    )

    relay: bool = Field(
        default=True, description="Run the outbox relay in this API process (one or more may)."
    )
    max_body_bytes: int = Field(
        default=512_000, description="Largest request body, after gzip is inflated (413 above)."
    )
    # Per event, far below what Temporal takes (2 MB a payload; its JSON encoder gives up near
    # 256 levels), so that a run's buffer of events and its continue-as-new input stay small.
    max_event_bytes: int = Field(
        default=32_768,
        gt=0,
        description="Largest properties (or traits) of one event, as compact JSON (413 above).",
    )
    max_event_depth: int = Field(
        default=32,
        gt=0,
        description="Deepest nesting of objects and lists in one event's properties (422 above).",
    )
    max_event_keys: int = Field(
        default=1_000,
        gt=0,
        description="Most keys in one event's properties, counted at every level (422 above).",
    )

    # Channels. With no credentials set, sends go to the console provider.
    sendgrid_api_key: str | None = None
    sendgrid_base_url: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str | None = Field(
        default=None, description="Base64 ECDSA P-256 key of SendGrid's Signed Event Webhook."
    )
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_base_url: str = "https://api.twilio.com"
    webhook_signing_secret: str | None = Field(
        default=None, description="HMAC-SHA256 key for the webhook channel's signature header."
    )
    fcm_service_account_file: str | None = Field(
        default=None,
        description="Path of the Firebase service-account JSON file (Project settings -> Service "
        "accounts -> Generate new private key); push goes through FCM when it is set.",
    )
    fcm_project_id: str | None = Field(
        default=None, description="The Firebase project; by default the file's `project_id`."
    )
    fcm_base_url: str = Field(
        default="https://fcm.googleapis.com", description="FCM HTTP v1 API host (tests: a fake)."
    )
    vapid_private_key: str | None = Field(
        default=None,
        description="Web push (VAPID, RFC 8292): the application server's P-256 private key, "
        "base64url (the 32-byte raw key that `web-push generate-vapid-keys` prints, or DER) or "
        "PEM; browsers' push subscriptions get push when it and vapid_subject are set.",
    )
    vapid_subject: str | None = Field(
        default=None,
        pattern=r"^(mailto:\S+@\S+|https://\S+)$",
        description="Web push: the VAPID `sub` claim, a mailto: or https: contact for the push "
        "services' operators.",
    )
    webpush_endpoint_hosts: str = Field(
        default="fcm.googleapis.com,updates.push.services.mozilla.com,*.notify.windows.com,"
        "*.push.apple.com",
        description="Web push: the push services a subscription's endpoint may name, host "
        "patterns, comma-separated (anybody with the tracking key can register one, and the "
        "worker posts to it). https only, but for loopback hosts listed here (tests).",
    )
    webpush_ttl_seconds: int = Field(
        default=86400,
        ge=0,
        le=2419200,
        description="Web push: how long a push service keeps a message for an offline browser.",
    )
    twilio_whatsapp_from_number: str | None = Field(
        default=None,
        description="The WhatsApp sender registered with Twilio, E.164 (+14155238886); WhatsApp "
        "goes through Twilio when it and the Twilio account are set.",
    )
    provider_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    provider_concurrency: int = Field(
        default=16,
        gt=0,
        le=256,
        description="Calls one worker makes to each of SendGrid and Twilio at once, each in a "
        "thread of its own. A send is marked sending only once its call has a thread, so a "
        "crash leaves at most this many outcomes unknown per worker and provider.",
    )
    secret_key: str | None = Field(
        default=None,
        description="Signs unsubscribe links (SendGrid sends) and checks them (the API): "
        "required by the API and with SendGrid or Twilio; `journeys dev` makes its own.",
    )
    unsubscribe_mailto: str | None = Field(
        default=None, description="Address for List-Unsubscribe mailto; none when unset."
    )
    resend_unconfirmed_after_seconds: int | None = Field(
        default=None,
        ge=0,
        description="An attempt whose outcome is unknown (timeout, crash mid-call) is sent "
        "again if no delivery webhook confirmed it within this many seconds. Unset: 120 for "
        "email when SendGrid's signed webhook is configured (sendgrid_webhook_public_key), "
        "else never; 0: never (at most once).",
    )
    webhook_max_age_seconds: int = Field(
        default=300, gt=0, description="Signed delivery webhooks older than this are refused."
    )

    encryption_keys: Annotated[dict[str, SecretBytes], NoDecode] = Field(
        default_factory=dict,
        description="Keys of the payload codec (AES-256-GCM) as `id:base64key` entries separated "
        "by commas, or a JSON object of id to base64 key; the last one encrypts, every one "
        "decrypts. Empty: payloads travel unencrypted.",
    )
    id_hash_key: SecretStr | None = Field(
        default=None,
        description="With encryption keys set, the HMAC key that turns userIds and correlation "
        "values into the hashes workflow ids and JourneyContactId carry. It never rotates "
        "(ids must stay the same for a contact); unset: derived from the first of the "
        "encryption keys, which must then stay listed.",
    )
    codec_token: SecretStr | None = Field(
        default=None,
        description="A bearer token that opens the codec server (`/codec/encode`, "
        "`/codec/decode`) besides admin API keys, for the Temporal UI and CLI; unset: admin "
        "keys only.",
    )
    codec_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins (`scheme://host:port`, comma-separated) whose pages may call the "
        "codec server from a browser: the Temporal UI's address. `journeys dev` adds its own.",
    )

    default_timezone: str = Field(
        default="UTC",
        description="IANA zone of contacts whose `timezone` is empty or no known zone, for "
        "date-based entry (`trigger: {date_attribute: ...}`).",
    )
    date_entry_every_minutes: int = Field(
        default=15,
        ge=1,
        le=1440,
        description="How often a date-triggered journey's schedule fires; each fire enters the "
        "contacts whose moment fell since the previous one.",
    )

    # Retention (docs/operating.md, "Retention"): the daily schedule `journeys-retention`.
    retention_events_days: int | None = Field(
        default=365,
        ge=0,
        description="Stored events older than this many days (by event time and by receipt) "
        "are deleted, except those a segment or journey condition still reads (an event named "
        "by a condition without `within` is kept forever, one with a longer `within` for that "
        "long) and those the outbox still holds. messageId deduplication holds this long. "
        "0: kept forever.",
    )
    retention_message_bodies_days: int | None = Field(
        default=90,
        ge=0,
        description="The rendered content of messages (subject, text, HTML, headers) is "
        "cleared this many days after the send; the row, its status and its outcomes stay "
        "for the stats. 0: kept forever.",
    )
    retention_batch_size: int = Field(
        default=5_000,
        ge=1,
        le=10_000,
        description="Rows one retention statement deletes or clears at most: each batch is a "
        "short transaction of its own, so ingest and sends go on in between.",
    )

    # Consent and pacing, per channel, across all journeys.
    sms_quiet_hours: str | None = Field(
        default="21:00-08:00",
        pattern=QUIET_HOURS,
        description="HH:MM-HH:MM in the contact's zone in which SMS wait; empty for none.",
    )
    email_quiet_hours: str | None = Field(default=None, pattern=QUIET_HOURS)
    email_daily_cap: int | None = Field(
        default=None, gt=0, description="Most emails one contact gets in any 24 hours."
    )
    sms_daily_cap: int | None = Field(
        default=None, gt=0, description="Most SMS one contact gets in any 24 hours."
    )
    push_quiet_hours: str | None = Field(
        default=None, pattern=QUIET_HOURS, description="As sms_quiet_hours, for push."
    )
    push_daily_cap: int | None = Field(
        default=None, gt=0, description="Most push messages one contact gets in any 24 hours."
    )
    whatsapp_quiet_hours: str | None = Field(
        default=None, pattern=QUIET_HOURS, description="As sms_quiet_hours, for WhatsApp."
    )
    whatsapp_daily_cap: int | None = Field(
        default=None, gt=0, description="Most WhatsApp messages one contact gets in any 24 hours."
    )

    @field_validator("database_url")
    @classmethod
    def _psycopg3_driver(cls, value: str) -> str:
        # Plain postgres URLs would pick psycopg2, which is not installed.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @field_validator(
        "sms_quiet_hours", "email_quiet_hours", "push_quiet_hours", "whatsapp_quiet_hours"
    )
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("retention_events_days", "retention_message_bodies_days")
    @classmethod
    def _zero_keeps_forever(cls, value: int | None) -> int | None:
        return value or None

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if zone(value).key != value:
            raise ValueError(
                f"JOURNEYS_DEFAULT_TIMEZONE: {value!r} is no IANA time zone (e.g. Europe/Paris)"
            )
        return value

    @field_validator("encryption_keys", mode="before")
    @classmethod
    def _parse_encryption_keys(cls, value: object) -> dict[str, bytes]:
        return parse_encryption_keys(value)

    @field_validator("codec_cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin for origin in re.split(r"[,\s]+", value) if origin]
        return value

    @field_validator("codec_cors_origins")
    @classmethod
    def _origins_without_paths(cls, value: list[str]) -> list[str]:
        # Browsers send the origin bare: a trailing slash or a path would never match it.
        for origin in value:
            if not ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"JOURNEYS_CODEC_CORS_ORIGINS: {origin!r} is not an origin like "
                    "http://127.0.0.1:8233 (scheme, host and port; no path)"
                )
        return value

    @model_validator(mode="after")
    def _real_secret_with_real_providers(self) -> Settings:
        real = self.sendgrid_api_key or self.twilio_account_sid
        if real and not self.secret_key:
            raise ValueError("set JOURNEYS_SECRET_KEY before configuring SendGrid or Twilio")
        return self

    def require_secret_key(self) -> str:
        """The key for unsubscribe links, for a process that serves them; there is no default,
        since a published one would let anybody unsubscribe anybody."""
        if not self.secret_key:
            raise MissingSecretKey(
                "set JOURNEYS_SECRET_KEY (a long random string, e.g. `openssl rand -hex 32`): "
                "it signs the unsubscribe links that the API serves"
            )
        return self.secret_key

    @property
    def has_sendgrid(self) -> bool:
        return bool(self.sendgrid_api_key)

    @property
    def has_twilio(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_from_number)

    @property
    def has_fcm(self) -> bool:
        return bool(self.fcm_service_account_file)

    @property
    def has_webpush(self) -> bool:
        return bool(self.vapid_private_key and self.vapid_subject)

    @property
    def has_whatsapp(self) -> bool:
        return bool(
            self.twilio_account_sid and self.twilio_auth_token and self.twilio_whatsapp_from_number
        )


def parse_encryption_keys(value: object) -> dict[str, bytes]:
    """Key id -> 32 raw bytes, in the order given (the last one is current). Strings are
    base64; bytes (or SecretBytes, when settings are copied) are taken as raw keys."""
    if value is None or value == "":
        return {}
    entries = _key_entries(value.strip() if isinstance(value, str) else value)
    keys: dict[str, bytes] = {}
    for key_id, key in entries:
        if not KEY_ID.fullmatch(key_id):
            raise ValueError(
                f"{ENCRYPTION_KEYS}: key id {key_id!r} must be 1 to 64 letters, digits, "
                "'_', '.' or '-'"
            )
        if key_id in keys:
            raise ValueError(f"{ENCRYPTION_KEYS}: key id {key_id!r} appears twice")
        keys[key_id] = _key_bytes(key_id, key)
    return keys


def _key_entries(value: object) -> list[tuple[str, object]]:
    if isinstance(value, str):
        if value.startswith("{"):
            try:
                return json.loads(value, object_pairs_hook=list)
            except ValueError:
                raise ValueError(f"{ENCRYPTION_KEYS}: not a JSON object of id to key") from None
        value = [entry for entry in re.split(r"[,\s]+", value) if entry]
    if isinstance(value, Mapping):
        return [(str(key_id), key) for key_id, key in value.items()]
    if isinstance(value, list | tuple):
        entries = []
        for entry in value:
            key_id, colon, key = str(entry).partition(":")
            if not colon:
                raise ValueError(f"{ENCRYPTION_KEYS}: an entry is not of the form id:base64key")
            entries.append((key_id.strip(), key.strip()))
        return entries
    raise ValueError(f"{ENCRYPTION_KEYS}: a list of id:base64key entries or a JSON object")


def _key_bytes(key_id: str, key: object) -> bytes:
    if isinstance(key, SecretBytes):
        raw = key.get_secret_value()
    elif isinstance(key, bytes):
        raw = key
    elif isinstance(key, str):
        try:
            raw = base64.b64decode(key, validate=True)
        except binascii.Error:
            raise ValueError(f"{ENCRYPTION_KEYS}: key {key_id!r} is not base64") from None
    else:
        raise ValueError(f"{ENCRYPTION_KEYS}: key {key_id!r} is not a base64 string")
    if len(raw) != ENCRYPTION_KEY_BYTES:
        raise ValueError(
            f"{ENCRYPTION_KEYS}: key {key_id!r} has {len(raw)} bytes, AES-256 needs "
            f"{ENCRYPTION_KEY_BYTES} (e.g. `openssl rand -base64 32`)"
        )
    return raw


@lru_cache
def get_settings() -> Settings:
    return Settings()
