"""The one settings class shared by the API, the worker, the CLI and Alembic."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".data")
DEV_SECRET = "dev-only-secret-change-me"
QUIET_HOURS = r"^$|^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"


class Settings(BaseSettings):
    """Read from the environment with the ``JOURNEYS_`` prefix (e.g. ``JOURNEYS_DATABASE_URL``)."""

    model_config = SettingsConfigDict(env_prefix="JOURNEYS_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DATA_DIR / 'journeys.db'}",
        description="SQLAlchemy URL; postgresql:// URLs are served by psycopg 3.",
    )
    temporal_address: str = Field(default="127.0.0.1:7233", description="Temporal frontend.")
    temporal_namespace: str = "default"
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
    provider_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    secret_key: str = Field(
        default=DEV_SECRET,
        description="Signs unsubscribe links; must be set once a real provider is configured.",
    )
    unsubscribe_mailto: str | None = Field(
        default=None, description="Address for List-Unsubscribe mailto; none when unset."
    )
    resend_unconfirmed_after_seconds: int | None = Field(
        default=None,
        gt=0,
        description="An attempt whose outcome is unknown (timeout, crash mid-call) is sent "
        "again if no delivery webhook confirmed it within this many seconds; unset: never "
        "sent again (at most once).",
    )
    webhook_max_age_seconds: int = Field(
        default=300, gt=0, description="Signed delivery webhooks older than this are refused."
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

    @field_validator("database_url")
    @classmethod
    def _psycopg3_driver(cls, value: str) -> str:
        # Plain postgres URLs would pick psycopg2, which is not installed.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @field_validator("sms_quiet_hours", "email_quiet_hours")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _real_secret_with_real_providers(self) -> Settings:
        real = self.sendgrid_api_key or self.twilio_account_sid
        if real and self.secret_key == DEV_SECRET:
            raise ValueError("set JOURNEYS_SECRET_KEY before configuring SendGrid or Twilio")
        return self

    @property
    def has_sendgrid(self) -> bool:
        return bool(self.sendgrid_api_key)

    @property
    def has_twilio(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_from_number)


@lru_cache
def get_settings() -> Settings:
    return Settings()
