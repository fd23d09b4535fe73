"""The new-block sensor's decisions: every block covered, one run per newest block, coalescing when behind."""

from __future__ import annotations

from liq_pipeline.evaluation.ticks import plan_tick


def test_first_tick_evaluates_the_head_and_adds_partitions():
    plan = plan_tick(
        None, head=2_537, known_partitions=set(), evaluation_in_flight=False, range_size=1_000, confirmations=10
    )
    assert (plan.evaluate_block, plan.from_block, plan.cursor) == (2_537, 2_537, 2_537)
    assert plan.run_key == "evaluate-2537"
    # finished: 0-999 and 1000-1999 (1999 is 538 deep); open: 2000-2999 for this block's candidates
    assert plan.new_partitions == [
        "000000000000-000000000999",
        "000000001000-000000001999",
        "000000002000-000000002999",
    ]


def test_a_tick_covers_every_block_since_the_cursor():
    plan = plan_tick(
        100, head=103, known_partitions=set(), evaluation_in_flight=False, range_size=1_000, confirmations=10
    )
    assert (plan.from_block, plan.evaluate_block, plan.cursor) == (101, 103, 103)


def test_coalesces_while_an_evaluation_runs():
    busy = plan_tick(
        100,
        head=103,
        known_partitions={"000000000000-000000000999"},
        evaluation_in_flight=True,
        range_size=1_000,
        confirmations=10,
    )
    assert busy.evaluate_block is None and busy.cursor == 100  # nothing launched, nothing skipped
    later = plan_tick(
        busy.cursor,
        head=106,
        known_partitions={"000000000000-000000000999"},
        evaluation_in_flight=False,
        range_size=1_000,
        confirmations=10,
    )
    assert (later.from_block, later.evaluate_block) == (101, 106)  # one run for the newest block covers all


def test_no_new_block_no_run():
    plan = plan_tick(
        50,
        head=50,
        known_partitions={"000000000000-000000000999"},
        evaluation_in_flight=False,
        range_size=1_000,
        confirmations=10,
    )
    assert plan.evaluate_block is None and plan.new_partitions == []


def test_a_range_is_final_only_when_confirmed():
    shallow = plan_tick(
        None, head=1_005, known_partitions=set(), evaluation_in_flight=False, range_size=1_000, confirmations=10
    )
    assert shallow.new_partitions == ["000000001000-000000001999"]  # 0-999 ends only 6 blocks deep
    deep = plan_tick(
        None, head=1_009, known_partitions=set(), evaluation_in_flight=False, range_size=1_000, confirmations=10
    )
    assert "000000000000-000000000999" in deep.new_partitions
