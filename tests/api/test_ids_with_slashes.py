"""Contact ids are the app's own and may hold `/`: every contact route takes them as they are.

Issue 14, item 10: `GET /v1/contacts/u1/c1` and `DELETE /v1/contacts/u1/c1` were 404s, because
the id was one path segment."""

from __future__ import annotations

from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact
from tests.support import harness as h
from tests.support import signed_webhooks as sw
from tests.support.api import Api


async def test_a_contact_id_with_slashes_is_read_listed_and_erased(api: Api, engine_db: Database):
    contact_id = h.contact(engine_db, f"{h.unique('u')}/c1/")
    neighbour = h.contact(engine_db, contact_id.split("/")[0])
    path = f"/v1/contacts/{contact_id}"

    read = await api.http.get(path, headers=api.admin)
    listed = await api.http.get(f"{path}/journeys", headers=api.admin)
    erased = await api.http.delete(path, headers=api.admin)

    assert read.status_code == 200, read.text
    assert read.json()["id"] == contact_id
    assert (listed.status_code, listed.json()) == (200, [])
    assert erased.status_code == 200, erased.text
    assert sw.reload(engine_db, Contact, contact_id) is None
    assert sw.reload(engine_db, Contact, neighbour) is not None  # `u1` is not `u1/c1/`
    assert (await api.http.get(path, headers=api.admin)).status_code == 404
