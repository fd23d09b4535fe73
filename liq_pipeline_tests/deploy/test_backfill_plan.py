"""The order `liq backfill --parallel` starts ranges in (commands/backfill.py `_Plan`): in block order, a range
only once every earlier range has its pool_events or has ended (its borrower_snapshots reads them), and the ranges
of a dead worker run again."""

from __future__ import annotations

from liq_pipeline.commands.backfill import _Plan

KEYS = ["000000000000-000000000009", "000000000010-000000000019", "000000000020-000000000029"]
A, B, C = KEYS


def test_a_range_starts_once_every_earlier_range_has_its_pool_events():
    plan = _Plan(list(reversed(KEYS)))  # in block order whatever the order given
    assert plan.next_range() == A
    assert plan.next_range() is None and plan.waiting()  # B waits for A's pool_events
    plan.events_done({A})
    assert plan.next_range() == B
    plan.events_done({C})  # a range's own pool_events do not let the next one start before the earlier ones'
    assert plan.next_range() is None
    plan.events_done({B})
    assert plan.next_range() == C
    assert plan.next_range() is None and not plan.waiting()
    for key in KEYS:
        plan.record(key, None)
    assert plan.finished()
    assert plan.outcomes() == dict.fromkeys(KEYS)


def test_an_ended_range_lets_the_next_start_even_without_its_pool_events():
    """As in a sequential backfill: B runs (its borrower_snapshots then says, in one line, what is missing)."""
    plan = _Plan(KEYS)
    assert plan.next_range() == A
    plan.record(A, "range A: pool_events: the node said no")
    assert plan.next_range() == B
    assert not plan.finished()
    plan.record(B, "range B: borrower_snapshots: cannot know the borrowers before block 10")
    plan.events_done({B})
    assert plan.next_range() == C
    plan.record(C, None)
    assert plan.finished()
    assert plan.outcomes()[A] == "range A: pool_events: the node said no"
    assert plan.outcomes()[C] is None


def test_the_ranges_of_a_dead_worker_run_again_in_order():
    plan = _Plan(KEYS)
    first = plan.next_range()
    plan.events_done({A})
    second = plan.next_range()
    plan.retry(second)
    plan.retry(first)
    assert plan.retrying() == [B, A]
    plan.requeue()
    assert not plan.finished()
    assert [plan.next_range(), plan.next_range()] == [A, B]  # A's pool_events were seen: B need not wait again
