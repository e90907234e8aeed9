"""The journeys command: validate, render, schema, create-key."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from temporal_journeys.cli.commands import app
from temporal_journeys.journeys.validation import json_schema

EXAMPLES = Path(__file__).parents[1] / "examples"
runner = CliRunner()


def test_validate_accepts_the_examples():
    files = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
    result = runner.invoke(app, ["validate", *files])
    assert result.exit_code == 0, result.output
    assert "abandoned-cart.yaml: ok (abandoned-cart, 7 steps)" in result.output


def test_validate_lists_every_problem_with_file_and_path(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "key: bad\nname: Bad\ntrigger: {event: x}\nsteps:\n"
        "  - {id: a, wait: P0D}\n  - {id: b, send: {channel: fax, template: t}}\n"
    )
    result = runner.invoke(app, ["validate", str(bad), str(tmp_path / "missing.yaml")])
    assert result.exit_code == 1
    assert f"{bad}: $.steps[0].wait: duration PT0S is out of range" in result.output
    assert f"{bad}: $.steps[1].send.channel: Input should be" in result.output
    assert "missing.yaml: No such file or directory" in result.output


def test_render_draws_every_step_and_edge():
    result = runner.invoke(app, ["render", str(EXAMPLES / "abandoned-cart.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("flowchart TD")
    assert "s2 -->|email.opened| s6" in result.output
    assert "s2 -->|timeout| s3" in result.output
    assert "s6 --> finish" in result.output


def test_schema_prints_the_json_schema():
    result = runner.invoke(app, ["schema"])
    assert json.loads(result.output) == json_schema()


def test_create_key_prints_a_key_once_and_refuses_unknown_scopes(tmp_path: Path, monkeypatch):
    from temporal_journeys.store.db import Database
    from temporal_journeys.store.keys import scope_of
    from temporal_journeys.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'keys.db'}"
    upgrade(url)
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", url)
    from temporal_journeys.journeys.settings import get_settings

    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["create-key", "--name", "shop", "--scope", "track"])
        assert result.exit_code == 0, result.output
        key = result.output.strip()
        db = Database(url)
        with db.transaction() as session:
            assert scope_of(session, key) == "track"
        db.dispose()
        refused = runner.invoke(app, ["create-key", "--name", "x", "--scope", "root"])
        assert refused.exit_code == 2 and "scope must be one of track, admin" in refused.output
    finally:
        get_settings.cache_clear()


def unused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_commands_that_call_the_api_say_when_it_is_unreachable():
    url = f"http://127.0.0.1:{unused_port()}"
    journey = str(EXAMPLES / "welcome.yaml")
    for args in (["enroll", "welcome", "ada"], ["diff", journey], ["render", "--stats", journey]):
        result = runner.invoke(app, args, env={"JOURNEYS_API_URL": url})
        assert result.exit_code == 1, (args, result.output)
        assert "Connection refused" in result.output


def test_enroll_refuses_bad_arguments_before_calling_the_api(tmp_path: Path):
    env = {"JOURNEYS_API_URL": f"http://127.0.0.1:{unused_port()}"}
    nobody = runner.invoke(app, ["enroll", "welcome"], env=env)
    assert nobody.exit_code == 2 and "no userIds" in nobody.output
    listed = tmp_path / "users.txt"
    listed.write_text("# nobody\n\n")
    empty = runner.invoke(app, ["enroll", "welcome", "--users", str(listed)], env=env)
    assert empty.exit_code == 2 and "no userIds" in empty.output
    missing = runner.invoke(app, ["enroll", "welcome", "--users", str(tmp_path / "x")], env=env)
    assert missing.exit_code == 2 and "No such file" in missing.output
    for bad in ("[1]", "{not json"):
        result = runner.invoke(app, ["enroll", "welcome", "ada", "--properties", bad], env=env)
        assert result.exit_code == 2, result.output
    too_big = runner.invoke(app, ["enroll", "welcome", "ada", "--chunk-size", "1001"], env=env)
    assert too_big.exit_code == 2
