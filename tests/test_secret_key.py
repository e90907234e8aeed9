"""The key that signs unsubscribe links has no published default: the API refuses to start
without one, outside `journeys dev` (which makes its own).

Issue 14, item 11: the default "dev-only-secret-change-me" was accepted unless SendGrid or
Twilio credentials were set, so anyone could sign an unsubscribe link for any contact."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from temporal_journeys.api.app import create_app
from temporal_journeys.cli.commands import app as cli
from temporal_journeys.journeys.settings import Settings, get_settings


@pytest.fixture
def no_secret_in_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("JOURNEYS_SECRET_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # and no .env file with one
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", f"sqlite:///{tmp_path / 'j.db'}")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_api_does_not_start_without_a_secret_key(no_secret_in_the_environment: None):
    app = create_app(Settings(), relay=False)

    with pytest.raises(RuntimeError, match="JOURNEYS_SECRET_KEY"), TestClient(app):
        pass


def test_journeys_api_says_which_setting_is_missing(
    no_secret_in_the_environment: None, monkeypatch: pytest.MonkeyPatch
):
    import uvicorn

    def serve(*_: object, **__: object) -> None:
        raise AssertionError("the API was served without a secret key")

    monkeypatch.setattr(uvicorn, "run", serve)

    result = CliRunner().invoke(cli, ["api", "--port", "1"])

    assert result.exit_code == 2, result.output
    assert "JOURNEYS_SECRET_KEY" in result.output


def test_with_a_secret_key_the_api_starts(no_secret_in_the_environment: None):
    app = create_app(Settings(secret_key="a-long-random-string"), relay=False)

    with TestClient(app) as http:
        assert http.get("/healthz").status_code == 200


def test_real_providers_still_need_it(no_secret_in_the_environment: None):
    with pytest.raises(ValueError, match="JOURNEYS_SECRET_KEY"):
        Settings(sendgrid_api_key="SG.x")


def test_the_benchmarks_start_their_api_with_a_secret_key(
    no_secret_in_the_environment: None, monkeypatch: pytest.MonkeyPatch
):
    """The benchmarks' API processes take their settings from ``bench.stack.settings_env``:
    without the key there, they would exit at start-up, and the benchmark with them."""
    from bench.stack import settings_env

    env = settings_env("sqlite:///:memory:", "127.0.0.1:7233", "bench")
    for name, value in env.items():
        if name.startswith("JOURNEYS_"):
            monkeypatch.setenv(name, value)
    assert Settings().require_secret_key() == env["JOURNEYS_SECRET_KEY"]
