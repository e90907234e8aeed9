"""Message metrics per step and variant from signed SendGrid webhooks posted to the API, on
runs recorded with exact counts per variant: unique opens, the p-value of opens against a
worked example, the time range, test sends left out, skips by reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Message
from tests.support import harness as h
from tests.support import signed_webhooks as sw
from tests.support import stats_rows as rows
from tests.support.api import Api


def subject_test(db: Database) -> str:
    """A journey shaped as the seed's subject-line test: a split into two sends."""
    key = h.unique("subject")
    h.publish(
        db,
        {
            "key": key,
            "name": key,
            "trigger": {"event": "trial.started"},
            "goal": {"event": "subscription.started"},
            "steps": [
                {
                    "id": "subject",
                    "split": {
                        "variants": [
                            {"name": "plain", "weight": 1, "next": "upgrade-plain"},
                            {"name": "urgent", "weight": 1, "next": "upgrade-urgent"},
                        ]
                    },
                },
                {
                    "id": "upgrade-plain",
                    "send": {"channel": "email", "template": "t-plain"},
                    "next": "done",
                },
                {"id": "upgrade-urgent", "send": {"channel": "email", "template": "t-urgent"}},
                {"id": "done", "exit": {}},
            ],
        },
    )
    return key


async def stats(api: Api, key: str, **params: Any) -> dict[str, Any]:
    response = await api.http.get(f"/v1/journeys/{key}/stats", params=params, headers=api.admin)
    assert response.status_code == 200, response.text
    [version] = response.json()
    return version


def by_name(items: list[dict[str, Any]], field: str) -> dict[str, dict[str, Any]]:
    return {item[field]: item for item in items}


async def test_opens_per_variant_are_unique_and_tested_against_the_worked_example(
    api: Api, engine_db: Database, signer: sw.SendGridSigner
):
    """Ten plain and ten urgent emails, all delivered; 2 plain and 7 urgent opened, each of
    them opened twice (two SendGrid events with their own sg_event_id).

    Unique opens: plain 2, urgent 7 (not 4 and 14). Open rates 0.2 and 0.7 of 10 sent: as
    worked by hand in tests/stats/test_significance.py, pooled p = 9/20 = 0.45,
    SE = sqrt(0.45 * 0.55 * (1/10 + 1/10)) = 0.222486, z = 0.5 / 0.222486 = 2.24733,
    two-sided p = 0.02462; lift 0.7/0.2 - 1 = 2.5 in [-0.0502, 11.898] (95 %)."""
    key = subject_test(engine_db)
    plain = [rows.sent(engine_db, key, "upgrade-plain", "plain") for _ in range(10)]
    urgent = [rows.sent(engine_db, key, "upgrade-urgent", "urgent") for _ in range(10)]
    delivered = [(m, kind) for m in plain + urgent for kind in ("processed", "delivered")]
    assert (await rows.post_sendgrid(api.http, signer, delivered))["applied"] == 40
    opened = [(m, "open") for m in plain[:2] + urgent[:7] for _ in range(2)]
    applied = await rows.post_sendgrid(api.http, signer, opened)
    assert applied["applied"] == 18 and applied["duplicates"] == 0  # 18 distinct open events

    version = await stats(api, key)

    steps = by_name(version["steps"], "step")
    assert steps["upgrade-plain"]["channel"] == "email"
    assert steps["upgrade-plain"]["messages"]["sent"] == 10
    assert steps["upgrade-plain"]["messages"]["delivered"] == 10
    assert steps["upgrade-plain"]["messages"]["opened"] == 2
    assert steps["upgrade-urgent"]["messages"]["opened"] == 7
    assert steps["upgrade-urgent"]["messages"]["open_rate"] == pytest.approx(0.7)
    [only] = steps["upgrade-urgent"]["variants"]
    assert only["variant"] == "urgent" and only["messages"]["opened"] == 7
    assert version["messages"]["sent"] == 20 and version["messages"]["opened"] == 9

    variants = by_name(version["variants"], "variant")
    assert variants["plain"]["messages"]["opened"] == 2
    assert variants["urgent"]["messages"]["opened"] == 7
    assert variants["plain"]["tests"] == []  # the control
    tests = by_name(variants["urgent"]["tests"], "rate")
    opens = tests["opened"]
    assert opens["compared_to"] == "plain"
    assert (opens["successes"], opens["trials"]) == (7, 10)
    assert (opens["control_successes"], opens["control_trials"]) == (2, 10)
    assert opens["z"] == pytest.approx(2.24733, abs=1e-5)
    assert opens["p_value"] == pytest.approx(0.02462, abs=1e-5)
    assert opens["lift"] == pytest.approx(2.5)
    assert opens["lift_ci"] == pytest.approx([-0.0502, 11.898], abs=1e-3)
    assert opens["difference_ci"] == pytest.approx([0.12299, 0.87701], abs=1e-5)
    # Every message delivered on both sides: the same rate, nothing to test.
    assert tests["delivered"]["p_value"] is None
    assert tests["conversion"]["compared_to"] == "plain"


async def test_the_control_can_be_chosen_and_an_unknown_one_is_refused(
    api: Api, engine_db: Database, signer: sw.SendGridSigner
):
    key = subject_test(engine_db)
    plain = [rows.sent(engine_db, key, "upgrade-plain", "plain") for _ in range(4)]
    urgent = [rows.sent(engine_db, key, "upgrade-urgent", "urgent") for _ in range(4)]
    await rows.post_sendgrid(api.http, signer, [(m, "open") for m in plain[:1] + urgent[:3]])

    version = await stats(api, key, control="urgent")

    variants = by_name(version["variants"], "variant")
    assert variants["urgent"]["tests"] == []
    opens = by_name(variants["plain"]["tests"], "rate")["opened"]
    assert opens["compared_to"] == "urgent" and opens["value"] == 0.25
    refused = await api.http.get(
        f"/v1/journeys/{key}/stats", params={"control": "loud"}, headers=api.admin
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["path"] == "$.query.control"


async def test_clicks_bounces_complaints_and_unsubscribes_per_step(
    api: Api, engine_db: Database, signer: sw.SendGridSigner
):
    """A click with no open event counts as an open too (images off); a bounce is sent but
    not delivered; a complaint and an unsubscribe prove delivery."""
    key = subject_test(engine_db)
    a, b, c, d = (rows.sent(engine_db, key, "upgrade-plain", "plain") for _ in range(4))
    await rows.post_sendgrid(
        api.http,
        signer,
        [
            (a, "click"),  # a click, and its open after it (moves no status, still counted)
            (a, "open"),
            (a, "click"),
            (b, "bounce"),
            (c, "delivered"),
            (c, "spamreport"),
            (d, "unsubscribe"),
        ],
    )

    messages = by_name((await stats(api, key))["steps"], "step")["upgrade-plain"]["messages"]

    assert {k: messages[k] for k in ("sent", "delivered", "opened", "clicked")} == {
        "sent": 4,
        "delivered": 3,
        "opened": 1,
        "clicked": 1,
    }
    assert (messages["bounced"], messages["complained"], messages["unsubscribed"]) == (1, 1, 1)
    assert messages["bounce_rate"] == 0.25 and messages["click_rate"] == 0.25


async def test_skipped_sends_are_counted_by_reason_and_failed_ones_apart(
    api: Api, engine_db: Database
):
    key = subject_test(engine_db)
    for reason in (
        "no email address",
        "invalid email address 'ada@'",
        "unsubscribed from email",
        "unsubscribed from topic 'news'",
        "suppressed: bounced",
        "suppressed: spamreport",
        "frequency cap: 3 email in 24 h (cap 3)",
    ):
        rows.sent(engine_db, key, "upgrade-plain", "plain", status="skipped", error=reason)
    rows.sent(engine_db, key, "upgrade-plain", "plain", status="failed", error="400 refused")

    messages = by_name((await stats(api, key))["steps"], "step")["upgrade-plain"]["messages"]

    assert messages["skipped"] == 7 and messages["failed"] == 1 and messages["sent"] == 0
    assert messages["skipped_by_reason"] == {
        "no_address": 1,
        "invalid_address": 1,
        "unsubscribed": 1,
        "topic": 1,
        "suppressed": 2,
        "frequency_cap": 1,
    }
    assert messages["open_rate"] is None  # nothing sent


async def test_the_time_range_selects_messages_by_when_they_were_sent(
    api: Api, engine_db: Database, signer: sw.SendGridSigner
):
    """Three sends on 1 November, two on 10 November, all opened after 10 November: a range
    over the first week counts the first three with their late opens."""
    key = subject_test(engine_db)
    early = datetime(2026, 11, 1, 9, tzinfo=UTC)
    late = datetime(2026, 11, 10, 9, tzinfo=UTC)
    first = [rows.sent(engine_db, key, "upgrade-plain", "plain", at=early) for _ in range(3)]
    second = [rows.sent(engine_db, key, "upgrade-plain", "plain", at=late) for _ in range(2)]
    await rows.post_sendgrid(api.http, signer, [(m, "open") for m in first[:2] + second])

    week = await stats(api, key, **{"from": "2026-11-01T00:00:00Z", "to": "2026-11-08T00:00:00Z"})
    after = await stats(api, key, **{"from": "2026-11-08T00:00:00+01:00"})
    everything = await stats(api, key)

    def plain(version: dict[str, Any]) -> dict[str, Any]:
        return by_name(version["steps"], "step")["upgrade-plain"]

    assert (plain(week)["messages"]["sent"], plain(week)["messages"]["opened"]) == (3, 2)
    assert plain(week)["entered"] == 3 and week["entered"] == 3
    assert (plain(after)["messages"]["sent"], plain(after)["messages"]["opened"]) == (2, 2)
    assert plain(everything)["messages"]["sent"] == 5
    # A moment without an offset is UTC; `to` is exclusive.
    edge = await stats(api, key, **{"from": "2026-11-01T09:00:00", "to": "2026-11-10T09:00:00"})
    assert plain(edge)["messages"]["sent"] == 3

    for params, path in (
        ({"from": "2026-11-08T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "$.query.from"),
        ({"from": "last week"}, "$.query.from"),
        ({"version": "0"}, "$.query.version"),
    ):
        response = await api.http.get(f"/v1/journeys/{key}/stats", params=params, headers=api.admin)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["detail"][0]["path"] == path


async def test_test_sends_are_left_out_even_when_they_carry_the_journey(
    api: Api, engine_db: Database, signer: sw.SendGridSigner
):
    key = subject_test(engine_db)
    real = rows.sent(engine_db, key, "upgrade-plain", "plain")
    test = rows.sent(engine_db, key, "upgrade-plain", "plain", test=True)
    await rows.post_sendgrid(api.http, signer, [(real, "open"), (test, "open"), (test, "click")])

    version = await stats(api, key)

    messages = by_name(version["steps"], "step")["upgrade-plain"]["messages"]
    assert (messages["sent"], messages["opened"], messages["clicked"]) == (1, 1, 0)
    assert version["messages"]["sent"] == 1
    assert sw.reload(engine_db, Message, test.message_id).status == "clicked"


async def test_the_stats_answer_only_the_version_asked_for(api: Api, engine_db: Database):
    key = subject_test(engine_db)
    rows.sent(engine_db, key, "upgrade-plain", "plain", version=1)
    rows.sent(engine_db, key, "upgrade-plain", "plain", version=2)
    rows.sent(engine_db, key, "upgrade-plain", "plain", version=2)

    response = await api.http.get(
        f"/v1/journeys/{key}/stats", params={"version": 2}, headers=api.admin
    )

    [version] = response.json()
    assert version["version"] == 2 and version["messages"]["sent"] == 2
    both = (await api.http.get(f"/v1/journeys/{key}/stats", headers=api.admin)).json()
    assert [v["version"] for v in both] == [1, 2]


def test_skip_reason_classes_match_what_the_send_guards_write():
    """The classes the stats group skips by are the guards' own wording: each pattern's fixed
    text is found in the module that writes it."""
    from pathlib import Path

    from temporal_journeys.store.stats import SKIP_REASONS

    root = Path(__file__).resolve().parents[2]
    written = (root / "activities" / "send_guards.py").read_text() + (
        root / "journeys" / "topics.py"
    ).read_text()
    for pattern, _ in SKIP_REASONS:
        assert pattern.split("%")[0].strip() in written, pattern
