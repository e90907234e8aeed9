"""`bench.scale_out`'s correctness check (issue 18, item 5): it passes what a correct run
leaves behind and fails on each way events or messages can go wrong across several API
processes, relays and workers, so a scale-out run that prints "checks passed" proves it."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from bench.scale_out import (
    Layout,
    Observed,
    check,
    parse_args,
    posted,
    run,
    start_id,
    stop_id,
    tick_id,
)

CONTACTS, TICKS = ["so1-000000", "so1-000001"], 3


def correct() -> Observed:
    """What a correct run leaves: each run signalled with start, every tick and stop, in that
    order; each tick taken once, in order, a send after each; one sent message per tick."""
    seen = Observed()
    for contact in CONTACTS:
        seen.signals[contact] = posted(contact, TICKS)
        seen.trace[contact] = [
            row
            for n in range(1, TICKS + 1)
            for row in (("event", tick_id(contact, n)), ("sent", None))
        ]
        seen.messages[contact] = [
            (f"journey/bench-scale-out/{contact}/e1/notify/{n}", "sent")
            for n in range(1, TICKS + 1)
        ]
        seen.runs[contact] = ["exited"]
    return seen


def test_a_correct_run_passes():
    assert check(CONTACTS, TICKS, correct()) == []


def _signalled_twice(seen: Observed) -> None:
    seen.signals[CONTACTS[0]].insert(2, tick_id(CONTACTS[0], 1))  # a second relay sent it again


def _signals_swapped(seen: Observed) -> None:
    signals = seen.signals[CONTACTS[1]]
    signals[1], signals[2] = signals[2], signals[1]  # tick 2 routed before tick 1


def _signal_lost(seen: Observed) -> None:
    seen.signals[CONTACTS[0]].remove(tick_id(CONTACTS[0], 2))


def _stop_lost(seen: Observed) -> None:
    seen.signals[CONTACTS[0]].remove(stop_id(CONTACTS[0]))


def _start_after_a_tick(seen: Observed) -> None:
    signals = seen.signals[CONTACTS[0]]
    signals.remove(start_id(CONTACTS[0]))
    signals.insert(1, start_id(CONTACTS[0]))


def _taken_out_of_order(seen: Observed) -> None:
    trace = seen.trace[CONTACTS[0]]
    trace[0], trace[2] = trace[2], trace[0]


def _taken_twice(seen: Observed) -> None:
    seen.trace[CONTACTS[1]] += [("event", tick_id(CONTACTS[1], TICKS)), ("sent", None)]


def _send_missing_from_trace(seen: Observed) -> None:
    seen.trace[CONTACTS[0]].pop()


def _message_twice(seen: Observed) -> None:
    # The same step visit sent twice under another key: one message more than ticks.
    key, status = seen.messages[CONTACTS[0]][0]
    seen.messages[CONTACTS[0]].append((key + "-again", status))


def _message_with_a_repeated_key(seen: Observed) -> None:
    seen.messages[CONTACTS[0]][1] = seen.messages[CONTACTS[0]][0]


def _message_failed(seen: Observed) -> None:
    key, _ = seen.messages[CONTACTS[1]][2]
    seen.messages[CONTACTS[1]][2] = (key, "failed")


def _message_missing(seen: Observed) -> None:
    seen.messages[CONTACTS[1]].pop()


def _second_run(seen: Observed) -> None:
    seen.runs[CONTACTS[0]].append("running")


def _run_not_ended(seen: Observed) -> None:
    seen.runs[CONTACTS[1]] = ["running"]


def _contact_never_seen(seen: Observed) -> None:
    for found in (seen.signals, seen.trace, seen.messages, seen.runs):
        del found[CONTACTS[1]]


def _outbox_not_drained(seen: Observed) -> None:
    seen.outbox_left = 1


BROKEN: dict[str, tuple[Callable[[Observed], None], str]] = {
    "an event signalled twice": (_signalled_twice, "more than once"),
    "two events signalled out of order": (_signals_swapped, "out of order"),
    "an event never signalled": (_signal_lost, "never reached"),
    "the stop event never signalled": (_stop_lost, "never reached"),
    "the start after a tick": (_start_after_a_tick, "out of order"),
    "ticks taken out of order": (_taken_out_of_order, "not the ticks in order"),
    "a tick taken twice": (_taken_twice, "not the ticks in order"),
    "a send missing after a tick": (_send_missing_from_trace, "one send after each tick"),
    "a message sent twice": (_message_twice, "4 messages"),
    "two messages with one key": (_message_with_a_repeated_key, "(2 keys)"),
    "a message failed": (_message_failed, "not sent"),
    "a message missing": (_message_missing, "2 messages"),
    "a second run": (_second_run, "not one that exited"),
    "a run still running": (_run_not_ended, "not one that exited"),
    "a contact with nothing": (_contact_never_seen, "never reached"),
    "entries left in the outbox": (_outbox_not_drained, "never routed"),
}


@pytest.mark.parametrize("break_it", BROKEN.values(), ids=BROKEN.keys())
def test_each_way_of_going_wrong_fails_the_check(
    break_it: tuple[Callable[[Observed], None], str],
):
    breaking, said = break_it
    seen = copy.deepcopy(correct())
    breaking(seen)
    problems = check(CONTACTS, TICKS, seen)
    assert problems, "the check passed a broken run"
    assert any(said in problem for problem in problems), problems


@pytest.mark.slow
async def test_a_reduced_scale_out_run_passes_its_checks(capsys: pytest.CaptureFixture[str]):
    """The --quick mode's correctness check, reduced: 2 API processes, 3 relays and 2 workers
    on a dev server of their own, 12 contacts posting start, 3 ticks, 2 views and stop, each
    next event through the other API process."""
    args = parse_args(["--contacts", "12", "--ticks", "3", "--views", "2", "--group", "4"])
    (result,) = await run(args, (Layout(apis=2, relays=3, workers=2),))
    assert result.problems == []
    assert result.events.count == 36 and result.views.count == 24
    assert "checks passed" in capsys.readouterr().out
