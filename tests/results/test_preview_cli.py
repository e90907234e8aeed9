"""`journeys preview TEMPLATE [--contact ID | --traits JSON] [--data JSON]` against the API."""

from __future__ import annotations

import asyncio
import json

from typer.testing import CliRunner

from temporal_journeys.cli import commands as cli
from temporal_journeys.store.db import Database
from tests.support import harness as h

TEMPLATE = {
    "channel": "email",
    "subject": "Hello {{ contact.first_name }}",
    "text": "Hi {{ contact.first_name }},\nyour code is {{ data.code }}.",
}


async def invoke(env: dict[str, str], *args: str):
    # The command makes blocking HTTP calls: run it off the loop that serves the API.
    return await asyncio.to_thread(CliRunner().invoke, cli.app, list(args), env=env)


async def test_preview_prints_subject_and_text_for_a_stored_contact(
    served_api: dict[str, str], engine_db: Database
):
    h.template(engine_db, "results-cli", **TEMPLATE)
    user = h.contact(engine_db, first_name="Ada")

    result = await invoke(
        served_api, "preview", "results-cli", "--contact", user, "--data", '{"code": "X1"}'
    )

    assert result.exit_code == 0, result.output
    assert "subject: Hello Ada" in result.output
    assert "Hi Ada,\nyour code is X1." in result.output


async def test_preview_with_sample_traits_names_the_line_and_variable_it_lacks(
    served_api: dict[str, str], engine_db: Database
):
    h.template(engine_db, "results-cli", **TEMPLATE)

    result = await invoke(
        served_api, "preview", "results-cli", "--traits", json.dumps({"first_name": "Sam"})
    )

    assert result.exit_code == 1
    assert "results-cli: text, line 2, variable data.code: data.code is undefined" in (
        result.output
    )


async def test_preview_refuses_bad_options_before_calling_the_api(served_api: dict[str, str]):
    both = await invoke(served_api, "preview", "t", "--contact", "a", "--traits", "{}")
    not_json = await invoke(served_api, "preview", "t", "--data", "{code")
    not_object = await invoke(served_api, "preview", "t", "--traits", "[1]")

    assert (both.exit_code, not_json.exit_code, not_object.exit_code) == (2, 2, 2)
    assert "--traits must be a JSON object" in not_object.output
