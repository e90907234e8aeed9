"""Workflow ids: one per (journey, contact, correlation), whatever characters the ids hold.

Contact ids and correlation values come from the app; a ``/`` in one must not make it look like
another contact's run (issue 14, item 10)."""

from __future__ import annotations

from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st
from temporalio.client import Client

from temporal_journeys.store.db import Database
from temporal_journeys.workflows.starter import workflow_id
from tests.support import harness as h

KEYS = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True)
# Few characters, heavy on those that separate and escape, so that near-collisions such as
# ("a/b", None) and ("a", "b") come up often.
TIGHT = st.text(alphabet="a/%2F", min_size=1, max_size=4)
TRIPLES = st.tuples(st.sampled_from(["k", "k2"]), TIGHT, st.none() | TIGHT) | st.tuples(
    KEYS, st.text(min_size=1, max_size=12), st.none() | st.text(min_size=1, max_size=12)
)


def _regrouped(triple: tuple[str, str, str | None]) -> st.SearchStrategy:
    """Triples whose contact and correlation, joined with ``/``, read as ``triple``'s do:
    the ones a bare ``/`` join would give the same id."""
    key, contact, correlation = triple
    joined = contact if correlation is None else f"{contact}/{correlation}"
    cuts = [i for i, char in enumerate(joined) if char == "/" and 0 < i < len(joined) - 1]
    regrouped = [(key, joined, None)] + [(key, joined[:i], joined[i + 1 :]) for i in cuts]
    return st.sampled_from(regrouped)


@given(TRIPLES.flatmap(lambda one: st.tuples(st.just(one), TRIPLES | _regrouped(one))))
def test_distinct_journey_contact_correlation_triples_get_distinct_ids(
    pair: tuple[tuple[str, str, str | None], tuple[str, str, str | None]],
):
    one, other = pair
    if one != other:
        assert workflow_id(*one) != workflow_id(*other), pair


@given(TRIPLES)
def test_a_workflow_id_names_its_triple_unambiguously(triple: tuple[str, str, str | None]):
    """Split on ``/`` and unescaped, an id gives back its triple: no two triples share one."""
    prefix, *parts = workflow_id(*triple).split("/")
    assert prefix == "journey" and len(parts) in (2, 3)
    key, contact, *correlation = [unquote(part) for part in parts]
    assert (key, contact, correlation[0] if correlation else None) == triple


PLAIN = st.text(min_size=1, max_size=12).filter(lambda s: "/" not in s and "%" not in s)


@given(KEYS, PLAIN, st.none() | PLAIN)
def test_ids_without_slash_or_percent_keep_the_id_they_always_had(
    key: str, contact: str, correlation: str | None
):
    """Running runs and recorded histories carry these: they must not move."""
    expected = f"journey/{key}/{contact}" + (f"/{correlation}" if correlation is not None else "")
    assert workflow_id(key, contact, correlation) == expected


def test_slash_and_percent_are_percent_encoded():
    assert workflow_id("cart", "u1/c1") == "journey/cart/u1%2Fc1"
    assert workflow_id("cart", "u1", "c1") == "journey/cart/u1/c1"
    assert workflow_id("cart", "50%", "a/b%2F") == "journey/cart/50%25/a%2Fb%252F"


SPEC = """
key: {key}
name: Keyed runs
trigger: {{event: cart.abandoned{correlate}}}
steps:
  - id: pause
    wait: PT1H
  - id: done
    exit: {{}}
"""


async def test_contact_u1_slash_c1_and_contact_u1_with_cart_c1_are_two_runs(
    client: Client, engine_db: Database
):
    """Version 1 runs per contact, version 2 per cart: ``u1/c1`` on the first and ``u1`` with
    cart ``c1`` on the second used to share ``journey/<key>/u1/c1``, so the second start only
    signalled the first run."""
    key = h.unique("keyed")
    v1, plain = h.publish(engine_db, SPEC.format(key=key, correlate=""))
    v2, per_cart = h.publish(engine_db, SPEC.format(key=key, correlate=", correlate: cart_id"))
    user = h.contact(engine_db, h.unique("u1"))
    slashed = h.contact(engine_db, f"{user}/c1")

    first = await h.start(client, plain, v1, slashed, h.event("cart.abandoned"))
    second = await h.start(client, per_cart, v2, user, h.event("cart.abandoned", cart_id="c1"))

    assert first.id != second.id
    assert first.result_run_id != second.result_run_id
    # The escaped id last: its history is the one kept (JOURNEYS_RECORD_HISTORIES).
    (two, two_view), (one, one_view) = [await h.finish(handle) for handle in (second, first)]
    assert (one.status, two.status) == ("completed", "completed")
    assert (one_view.contact_id, one_view.version) == (slashed, v1)
    assert (two_view.contact_id, two_view.version) == (user, v2)
    h.assert_recorded(engine_db, one_view)
    h.assert_recorded(engine_db, two_view, correlation="c1")
