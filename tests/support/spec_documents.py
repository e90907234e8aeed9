"""Valid journey documents the spec tests parse, validate and check against the JSON schema."""

from __future__ import annotations

from typing import Any

# The example of DESIGN.md section 3, as written there.
CART_YAML = """\
key: abandoned-cart
name: Abandoned cart recovery
trigger:
  event: cart.abandoned            # or: segment / schedule / date attribute / API enrolment
  correlate: cart_id               # one run per (contact, cart_id); follow-ups must carry it
re_entry: {after: P7D}             # never | always | {after: duration}
goal: {event: order.completed}     # converts and exits from any step
exit_on: [{event: contact.unsubscribed}]
quiet_hours: {start: "21:00", end: "08:00"}   # contact's time zone; sends wait for the window
steps:
  - id: wait-1h
    wait: PT1H
  - id: reminder
    send: {channel: email, template: cart-reminder}
  - id: opened?
    wait_for: {event: email.opened, message: reminder, timeout: P1D}
    on_timeout: discount
    next: done
  - id: discount
    send: {channel: email, template: cart-discount, data: {code: SAVE10}}
  - id: wait-3d
    wait: P3D
  - id: last-chance
    send: {channel: email, template: cart-last-chance}
  - id: done
    exit: {}
"""

CART: dict[str, Any] = {
    "key": "abandoned-cart",
    "name": "Abandoned cart recovery",
    "trigger": {"event": "cart.abandoned", "correlate": "cart_id"},
    "re_entry": {"after": "P7D"},
    "goal": {"event": "order.completed"},
    "exit_on": [{"event": "contact.unsubscribed"}],
    "quiet_hours": {"start": "21:00", "end": "08:00"},
    "steps": [
        {"id": "wait-1h", "wait": "PT1H"},
        {"id": "reminder", "send": {"channel": "email", "template": "cart-reminder"}},
        {
            "id": "opened?",
            "wait_for": {"event": "email.opened", "message": "reminder", "timeout": "P1D"},
            "on_timeout": "discount",
            "next": "done",
        },
        {
            "id": "discount",
            "send": {"channel": "email", "template": "cart-discount", "data": {"code": "SAVE10"}},
        },
        {"id": "wait-3d", "wait": "P3D"},
        {"id": "last-chance", "send": {"channel": "email", "template": "cart-last-chance"}},
        {"id": "done", "exit": {}},
    ],
}

# Every step kind, every condition form and every optional field, for the round trips.
EVERYTHING: dict[str, Any] = {
    "key": "everything",
    "name": "Every step kind",
    "description": "A journey that uses every part of the spec.",
    "trigger": {
        "event": "signed.up",
        "where": {"field": "event.plan", "in": ["pro", None]},
        "correlate": "account_id",
    },
    "re_entry": "always",
    "goal": {"event": "order.completed", "where": {"not": {"field": "event.total", "lt": 10}}},
    "exit_on": [
        {"event": "contact.unsubscribed"},
        {"event": "contact.deleted", "where": {"field": "event.reason", "eq": None}},
    ],
    "quiet_hours": {"start": "21:00", "end": "08:00", "channels": ["sms"]},
    "steps": [
        {"id": "pause", "wait": "PT1.5S", "title": "A short pause"},
        {"id": "morning", "wait": {"until": "09:30", "weekdays": ["mon", "fri"]}},
        {
            "id": "eve",
            "wait": {
                "date_attribute": "birthday",
                "offset": "-P1D",
                "at": "10:00",
                "yearly": True,
            },
        },
        {
            "id": "hello",
            "send": {
                "channel": "email",
                "template": "welcome",
                "data": {"n": 1, "f": 1.5, "list": [1, "a"], "nested": {"x": None}},
                "if_capped": "skip",
            },
            "on_failure": "bye",
        },
        {
            "id": "opened",
            "wait_for": {
                "event": "email.opened",
                "message": "hello",
                "where": {"field": "event.link", "contains": "promo"},
                "timeout": "P2W",
            },
            "on_timeout": "test",
        },
        {
            "id": "route",
            "branch": {
                "cases": [
                    {
                        "when": {
                            "all": [
                                {"field": "scores.lead", "gte": 30},
                                {
                                    "any": [
                                        {"field": "tags", "contains": "vip"},
                                        {"field": "contact.country", "in": ["SE", "NO"]},
                                    ]
                                },
                            ]
                        },
                        "next": "score",
                    },
                    {
                        "when": {
                            "seen": "page.viewed",
                            "where": {"field": "event.path", "exists": True},
                        },
                        "next": "test",
                    },
                    {
                        "when": {"event": "order.completed", "within": "P30D", "min": 2, "max": 5},
                        "next": "score",
                    },
                    {"when": {"event": "order.completed"}, "next": "score"},
                    {"when": {"field": "variant", "ne": "a"}, "next": "score"},
                ],
                "default": "test",
            },
        },
        {
            "id": "test",
            "split": {
                "variants": [
                    {"name": "a", "weight": 0.5, "next": "score"},
                    {"name": "b", "weight": 1.5},
                ],
                "holdout": {"weight": 0.1, "next": "bye"},
            },
        },
        {
            "id": "score",
            "update": {
                "attributes": {"stage": "lead"},
                "add_tags": ["engaged"],
                "remove_tags": ["cold"],
                "score": {"lead": -2.5},
            },
        },
        {"id": "handoff", "enter": {"journey": "reactivation"}},
        {"id": "bye", "exit": {"reason": "done"}},
    ],
}
