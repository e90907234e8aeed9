"""docker-compose.yml stays consistent with the settings class (no Docker engine here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from journeys.settings import Settings

COMPOSE = yaml.safe_load((Path(__file__).parents[1] / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PREFIX = Settings.model_config["env_prefix"]


def journeys_variables(service: dict) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items() if k.startswith(PREFIX)}


def test_every_journeys_variable_is_a_settings_field():
    fields = {PREFIX + name.upper() for name in Settings.model_fields}
    for name, service in SERVICES.items():
        unknown = set(journeys_variables(service)) - fields
        assert not unknown, f"{name} sets {unknown}, which Settings does not read"


def test_services_and_dependencies_exist():
    assert {"postgres", "temporal", "temporal-ui", "setup", "worker"} <= set(SERVICES)
    for name, service in SERVICES.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            assert rule["condition"] in (
                "service_healthy",
                "service_completed_successfully",
                "service_started",
            )
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], dependency


def test_app_services_reach_the_database_and_temporal():
    for name in ("setup", "worker"):
        variables = journeys_variables(SERVICES[name])
        assert variables["JOURNEYS_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in variables["JOURNEYS_DATABASE_URL"]
        assert variables["JOURNEYS_TEMPORAL_ADDRESS"] == "temporal:7233"


def test_secrets_have_no_defaults():
    text = (Path(__file__).parents[1] / "docker-compose.yml").read_text()
    for reference in re.findall(r"\$\{([A-Z_]+)([^}]*)\}", text):
        name, rest = reference
        assert rest.startswith(":?"), f"${{{name}}} must fail when unset, not default"
