"""The seeds' abandoned cart: 1 h reminder, +1 d discount, +3 d last chance, purchase converts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.store.db import Database
from tests.support import harness as h
from tests.support.specs import ABANDONED_CART

HOUR, DAY = timedelta(hours=1), timedelta(days=1)


@pytest.fixture(scope="module")
def cart(engine_db: Database):
    h.template(
        engine_db,
        "cart-reminder",
        subject="You left {{ event.item | default: 'your cart' }}",
        text="Still there?",
    )
    h.template(
        engine_db,
        "cart-discount",
        subject="10% off",
        text="Hi {{ contact.first_name | default: 'there' }}, use {{ data.code }} at checkout.",
    )
    h.template(engine_db, "cart-last-chance", subject="Last chance", text="Cart expires soon.")
    return h.publish(engine_db, ABANDONED_CART.format(key=h.unique("cart")))


async def test_no_action_sends_three_emails_at_1h_then_1d_then_3d(
    client: Client, engine_db: Database, cart
):
    version, journey = cart
    contact = h.contact(engine_db, first_name="Ada")
    handle = await h.start(
        client, journey, version, contact, h.event("cart.abandoned", cart_id="c1", item="shoes")
    )

    result, view = await h.finish(handle)

    assert result.status == "completed"
    h.assert_schedule(view, "sent", [HOUR, HOUR + DAY, HOUR + DAY + 3 * DAY])
    sent = h.messages(engine_db, contact)
    assert [m.template for m in sent] == ["cart-reminder", "cart-discount", "cart-last-chance"]
    assert sent[0].subject == "You left shoes"
    assert sent[1].body == "Hi Ada, use SAVE10 at checkout."
    assert all(m.status == "sent" for m in sent)


async def test_open_after_first_email_sends_nothing_more(
    client: Client, engine_db: Database, time_env: WorkflowEnvironment, cart
):
    version, journey = cart
    contact = h.contact(engine_db)
    handle = await h.start(
        client, journey, version, contact, h.event("cart.abandoned", cart_id="c1")
    )
    await time_env.sleep(2 * HOUR)
    [reminder] = h.messages(engine_db, contact)

    await h.signal(handle, "email.opened", message_id=reminder.id)
    result, view = await h.finish(handle)

    assert result.status == "completed" and result.reason == "finished"
    assert len(h.messages(engine_db, contact)) == 1
    assert [e.step for e in h.at(view, "event")] == ["opened?"]


async def test_open_of_another_message_does_not_count(
    client: Client, engine_db: Database, time_env: WorkflowEnvironment, cart
):
    version, journey = cart
    contact = h.contact(engine_db)
    handle = await h.start(
        client, journey, version, contact, h.event("cart.abandoned", cart_id="c1")
    )
    await time_env.sleep(2 * HOUR)

    await h.signal(handle, "email.opened", message_id="msg_someotherone")
    _, view = await h.finish(handle)

    assert len(h.messages(engine_db, contact)) == 3
    assert h.at(view, "timeout")[0].step == "opened?"


async def test_purchase_during_the_3_day_wait_converts_without_another_send(
    client: Client, engine_db: Database, time_env: WorkflowEnvironment, cart
):
    version, journey = cart
    contact = h.contact(engine_db)
    handle = await h.start(
        client, journey, version, contact, h.event("cart.abandoned", cart_id="c1")
    )
    await time_env.sleep(HOUR + DAY + 2 * DAY)

    await h.signal(handle, "order.completed", order_id="o1")
    result, view = await h.finish(handle)

    assert result.status == "converted"
    assert result.step == "wait-3d"
    assert len(h.messages(engine_db, contact)) == 2
    assert view.trace[-1].kind == "converted"


async def test_two_carts_run_independently(client: Client, engine_db: Database, cart):
    version, journey = cart
    contact = h.contact(engine_db)
    first = await h.start(client, journey, version, contact, h.event("cart.abandoned", cart_id="a"))
    second = await h.start(
        client, journey, version, contact, h.event("cart.abandoned", cart_id="b")
    )

    assert first.id != second.id
    assert (first.id, second.id) == (
        h.workflow_id_of(journey, contact, "a"),
        h.workflow_id_of(journey, contact, "b"),
    )
    await h.finish(first)
    await h.finish(second)
    assert len(h.messages(engine_db, contact)) == 6


async def test_the_same_event_twice_makes_one_run(client: Client, engine_db: Database, cart):
    version, journey = cart
    contact = h.contact(engine_db)
    trigger = h.event("cart.abandoned", cart_id="same")
    first = await h.start(client, journey, version, contact, trigger)
    second = await h.start(client, journey, version, contact, trigger)

    assert first.result_run_id == second.result_run_id
    await h.finish(first)
    assert len(h.messages(engine_db, contact)) == 3


async def test_missing_template_fails_the_run_clearly(client: Client, engine_db: Database):
    spec = ABANDONED_CART.format(key=h.unique("cart")).replace(
        "cart-last-chance", "no-such-template"
    )
    version, journey = h.publish(engine_db, spec)
    contact = h.contact(engine_db)
    handle = await h.start(
        client, journey, version, contact, h.event("cart.abandoned", cart_id="x")
    )

    from temporalio.client import WorkflowFailureError

    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "unknown template 'no-such-template'" in str(failure.value.cause)


async def test_contact_without_email_skips_each_send_with_the_reason_and_goes_on(
    client: Client, engine_db: Database, cart
):
    version, journey = cart
    contact = h.contact(engine_db, email=None)
    handle = await h.start(
        client, journey, version, contact, h.event("cart.abandoned", cart_id="n")
    )

    result, view = await h.finish(handle)

    assert result.status == "completed"
    assert [(e.step, e.detail) for e in h.at(view, "skipped")] == [
        ("reminder", "no email address"),
        ("discount", "no email address"),
        ("last-chance", "no email address"),
    ]
    assert {m.status for m in h.messages(engine_db, contact)} == {"skipped"}
