"""docker-compose.yml stays consistent with Settings and the code (no Docker engine here)."""

from __future__ import annotations

import re
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from journeys.cli import app
from journeys.settings import Settings

ROOT = Path(__file__).parents[1]
TEXT = (ROOT / "docker-compose.yml").read_text()
SERVICES = yaml.safe_load(TEXT)["services"]
PREFIX = Settings.model_config["env_prefix"]
APP_SERVICES = ("migrate", "search-attributes", "worker", "api")


def environment(name: str) -> dict[str, str]:
    return {key: str(value) for key, value in SERVICES[name].get("environment", {}).items()}


def test_every_journeys_variable_named_in_the_file_is_a_settings_field():
    fields = {PREFIX + name.upper() for name in Settings.model_fields}
    named = set(re.findall(rf"\b{PREFIX}[A-Z0-9_]+", TEXT))
    assert named, "the file names no JOURNEYS_ variable at all"
    assert named <= fields, f"Settings has no field for {sorted(named - fields)}"


def test_the_stack_has_its_services_and_dependencies_exist():
    assert {"postgres", "temporal", "temporal-ui", *APP_SERVICES} <= set(SERVICES)
    for name, service in SERVICES.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            condition = rule["condition"]
            assert condition in {
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            }
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], f"{dependency} has no healthcheck"
            if condition == "service_completed_successfully":
                assert SERVICES[dependency].get("restart") == "no", f"{dependency} is not one-shot"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_get_the_database_and_temporal(name: str):
    variables = environment(name)
    url = Settings(database_url=variables["JOURNEYS_DATABASE_URL"]).database_url
    assert url.startswith("postgresql+psycopg://journeys:")
    assert url.endswith("@postgres:5432/journeys")
    assert variables["JOURNEYS_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert SERVICES[name]["build"] == "."


def test_app_services_wait_for_the_schema():
    for name in ("worker", "api"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


def test_app_commands_exist():
    """Each command is a `journeys` subcommand or a runnable module of this package."""
    subcommands = set(get_command(app).commands)
    for name in APP_SERVICES:
        command = SERVICES[name]["command"]
        if command[0] == "journeys":
            assert command[1] in subcommands, f"{name}: no `journeys {command[1]}`"
        else:
            assert command[:2] == ["python", "-m"], f"{name}: unexpected command {command}"
            assert find_spec(command[2]) is not None, f"{name}: no module {command[2]}"
    assert (ROOT / "Dockerfile").is_file()


def test_required_values_have_no_defaults():
    for name, rest in re.findall(r"\$\{([A-Z0-9_]+)([^}]*)\}", TEXT):
        assert rest.startswith(":?"), f"${{{name}}} must fail when unset, not default"
