"""The `date_attribute` trigger in a journey document: what it accepts, and a 422 naming the
JSON path of a bad `at` or offset."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from temporal_journeys.journeys.spec import DateAttributeTrigger
from temporal_journeys.journeys.validation import load_document, parse_journey
from tests.support.api import Api

YAML = """
key: birthday
name: Birthday
trigger: {date_attribute: birthday, yearly: true, at: "09:00", offset: -P3D}
steps:
  - id: bye
    exit: {}
"""


def test_the_trigger_reads_from_yaml_with_its_defaults():
    trigger = parse_journey(load_document(YAML)).trigger
    assert trigger == DateAttributeTrigger(
        date_attribute="birthday", yearly=True, at=time(9), offset=timedelta(days=-3)
    )
    bare = DateAttributeTrigger(date_attribute="renewal_date")
    assert (bare.yearly, bare.at, bare.offset) == (False, time(9), timedelta(0))
    # It round-trips as the document wrote it.
    assert trigger.model_dump(mode="json") == {
        "date_attribute": "birthday",
        "yearly": True,
        "at": "09:00",
        "offset": "-P3D",
    }


@pytest.mark.parametrize(
    ("trigger", "path", "message"),
    [
        ({"at": "9am"}, "$.trigger.at", "HH:MM"),
        ({"at": "24:00"}, "$.trigger.at", "HH:MM"),
        ({"offset": "3 days"}, "$.trigger.offset", "not an ISO 8601 duration"),
        ({"offset": "-P1M"}, "$.trigger.offset", "months are not allowed"),
        ({"offset": "P400D"}, "$.trigger.offset", "out of range"),
        ({"offset": 3}, "$.trigger.offset", "ISO 8601 string"),
        ({"date_attribute": ""}, "$.trigger.date_attribute", "at least 1 character"),
        ({"yearly": "every year"}, "$.trigger.yearly", "boolean"),
        ({"every": "year"}, "$.trigger.every", "Extra inputs"),
    ],
)
async def test_a_bad_date_trigger_is_a_422_naming_its_path(
    api: Api, trigger: dict, path: str, message: str
):
    document = load_document(YAML)
    document["trigger"] = {**document["trigger"], **trigger}

    response = await api.http.put("/v1/journeys/birthday", json=document, headers=api.admin)

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["path"] == path
    assert message in problem["message"]
