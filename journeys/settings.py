"""The one settings class shared by the API, the worker, the CLI and Alembic."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".data")


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

    @field_validator("database_url")
    @classmethod
    def _psycopg3_driver(cls, value: str) -> str:
        # Plain postgres URLs would pick psycopg2, which is not installed.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
