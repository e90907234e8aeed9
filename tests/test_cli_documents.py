"""Topic and broadcast files in journeys as code: `journeys validate` knows them (problems with
JSON paths), `journeys dev` loads topics/ with segments/, and `journeys apply` / `diff` save
topics before the journeys that send on them and leave broadcast files alone."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from temporal_journeys.api.app import create_app
from temporal_journeys.cli import commands as cli
from temporal_journeys.cli.loader import load_folder
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import keys
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store import topics as topics_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade

EXAMPLES = Path(__file__).parents[1] / "examples"
runner = CliRunner()

NEWSLETTER_JOURNEY = """
key: monthly-digest
name: Monthly digest
trigger: {event: digest.requested}
steps:
  - id: digest
    send: {channel: email, template: digest, topic: digest}
"""


def test_validate_knows_topic_and_broadcast_files():
    files = [
        *sorted(EXAMPLES.glob("topics/*.yaml")),
        *sorted(EXAMPLES.glob("broadcasts/*.yaml")),
        *sorted(EXAMPLES.glob("segments/*.yaml")),
    ]
    result = runner.invoke(cli.app, ["validate", *map(str, files)])
    assert result.exit_code == 0, result.output
    assert "newsletter.yaml: ok (topic newsletter, opt_out)" in result.output
    assert (
        "weekly-newsletter.yaml: ok (broadcast of template newsletter-weekly to segment "
        "newsletter-readers)"
    ) in result.output


def test_validate_names_the_path_of_each_problem_in_topic_and_broadcast_files(tmp_path: Path):
    (tmp_path / "topics").mkdir()
    topic = tmp_path / "topics" / "promos.yaml"  # a topic by its folder
    topic.write_text("key: Promos!\nname: ''\ntype: weekly\n")
    declared = tmp_path / "news.yaml"  # a topic anywhere by its kind
    declared.write_text("kind: topic\nkey: news\nname: News\ncolour: red\n")
    broadcast = tmp_path / "blast.yaml"
    broadcast.write_text(
        "kind: broadcast\nsegment: vip\ntemplate: t\nrate_per_minute: 0\nlocal_time: '25:00'\n"
    )
    result = runner.invoke(cli.app, ["validate", str(topic), str(declared), str(broadcast)])
    assert result.exit_code == 1
    out = result.output
    assert f"{topic}: $.key: lower-case letters" in out
    assert f"{topic}: $.name: String should have at least 1 character" in out
    assert f"{topic}: $.type: Input should be 'opt_out' or 'opt_in'" in out
    assert f"{declared}: $.colour: Extra inputs are not permitted" in out
    assert f"{broadcast}: $.rate_per_minute: Input should be greater than or equal to 1" in out
    assert f"{broadcast}: $.local_time: String should match pattern" in out


def test_dev_loads_the_example_topics_with_the_segments_and_journeys(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'dev.db'}"
    data = tmp_path / "data"
    data.mkdir()
    cli._prepare_store(Settings(database_url=url), data, EXAMPLES)
    db = Database(url)
    try:
        with db.transaction() as session:
            topic = topics_store.get(session, "newsletter")
            assert topic is not None
            assert (topic.name, topic.type) == ("Weekly newsletter", "opt_out")
            assert segments_store.get(session, "newsletter-readers") is not None
        # A second start changes nothing (the topic is not saved again, nor anything else).
        assert load_folder(db, EXAMPLES) == []
        (tmp_path / "copy" / "topics").mkdir(parents=True)
        (tmp_path / "copy" / "topics" / "newsletter.yaml").write_text(
            "name: Weekly news\ntype: opt_in\n"
        )
        assert load_folder(db, tmp_path / "copy") == ["saved topic newsletter"]
        with db.transaction() as session:
            topic = topics_store.get(session, "newsletter")
            assert topic is not None and (topic.name, topic.type) == ("Weekly news", "opt_in")
    finally:
        db.dispose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def http(tmp_path: Path) -> Iterator[TestClient]:
    """The API on a store of its own."""
    url = f"sqlite:///{tmp_path / 'apply.db'}"
    upgrade(url)
    db = Database(url)
    try:
        with db.transaction() as session:
            key = keys.create(session, "cli", "admin")
        # No Temporal (a port nothing listens on): apply needs none for topics and journeys.
        settings = Settings(database_url=url, temporal_address=f"127.0.0.1:{_closed_port()}")
        app = create_app(settings, db=db, relay=False)
        client = TestClient(app, headers={"Authorization": f"Bearer {key}"})
        response = client.put("/v1/templates/digest", json={"channel": "email", "subject": "Hi"})
        assert response.status_code == 200, response.text
        yield client
    finally:
        db.dispose()


def run(http: TestClient, monkeypatch: pytest.MonkeyPatch, *args: str):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(cli, "_api", lambda url, key: http)
    return CliRunner().invoke(cli.app, list(args))


def test_apply_saves_topics_before_the_journeys_sending_on_them_and_leaves_broadcasts(
    http: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    journey = tmp_path / "monthly-digest.yaml"
    journey.write_text(NEWSLETTER_JOURNEY)
    (tmp_path / "topics").mkdir()
    topic = tmp_path / "topics" / "digest.yaml"
    topic.write_text("name: Monthly digest\ntype: opt_in\n")  # its key from the file's name
    broadcast = tmp_path / "blast.yaml"
    broadcast.write_text("kind: broadcast\nkey: blast\nsegment: vip\ntemplate: digest\n")
    files = [str(journey), str(broadcast), str(topic)]  # the journey first: apply reorders

    dry = run(http, monkeypatch, "apply", "--dry-run", *files)
    assert dry.exit_code == 0, dry.output
    assert f"{topic}: digest: would save" in dry.output
    assert http.get("/v1/topics/digest").status_code == 404

    first = run(http, monkeypatch, "apply", *files)
    assert first.exit_code == 0, first.output
    lines = [line for line in first.output.splitlines() if line and not line.startswith("  ")]
    assert lines == [
        f"{topic}: digest: saved",
        f"{broadcast}: blast: a broadcast: not applied (`journeys broadcast` sends it)",
        f"{journey}: monthly-digest: published v1",
    ]
    stored = http.get("/v1/topics/digest").json()
    assert (stored["name"], stored["type"]) == ("Monthly digest", "opt_in")
    assert http.get("/v1/broadcasts").json() == []  # applying a file sends nobody anything

    again = run(http, monkeypatch, "apply", *files)
    assert again.exit_code == 0, again.output
    assert again.output.count(": no change") == 2

    topic.write_text(yaml.safe_dump({"name": "Monthly digest", "type": "opt_out"}))
    diff = run(http, monkeypatch, "diff", str(topic))
    assert diff.exit_code == 0, diff.output
    assert 'type: "opt_in" -> "opt_out"' in diff.output
    noted = run(http, monkeypatch, "diff", str(broadcast))
    assert "blast: a broadcast: not applied" in noted.output


def test_apply_without_the_topic_file_is_refused_by_the_api(
    http: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """What loading topics first prevents: a send on a topic the API does not know."""
    journey = tmp_path / "monthly-digest.yaml"
    journey.write_text(NEWSLETTER_JOURNEY)
    result = run(http, monkeypatch, "apply", str(journey))
    assert result.exit_code == 1
    assert "digest" in result.output and "422" in result.output
