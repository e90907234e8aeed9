"""Templates for the webhook channel carry a Liquid URL, checked when saved."""

from __future__ import annotations

from tests.support.api import Api


async def test_a_webhook_template_without_a_url_is_refused_naming_url(api: Api):  # noqa: F811
    response = await api.http.put(
        "/v1/templates/ch-api-hook", json={"channel": "webhook"}, headers=api.admin
    )

    assert response.status_code == 422
    assert [problem["path"] for problem in response.json()["detail"]] == ["$.url"]


async def test_a_webhook_url_with_broken_liquid_is_refused(api: Api):  # noqa: F811
    response = await api.http.put(
        "/v1/templates/ch-api-hook",
        json={"channel": "webhook", "url": "https://crm.example.test/{{ contact.id "},
        headers=api.admin,
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["path"] == "$.url"


async def test_a_webhook_template_is_stored_with_its_url(api: Api):  # noqa: F811
    body = {"channel": "webhook", "url": "https://crm.example.test/leads/{{ contact.id }}"}
    put = await api.http.put("/v1/templates/ch-api-hook", json=body, headers=api.admin)
    got = await api.http.get("/v1/templates/ch-api-hook", headers=api.admin)

    assert put.status_code == got.status_code == 200
    assert got.json()["url"] == body["url"]
    assert got.json()["channel"] == "webhook"
