"""The new-block sensor's decisions: every block covered, one run per newest block, coalescing when behind, and a
new chain under the cursor (a restarted devnet, a reorg) noticed by its block hashes."""

from __future__ import annotations

import pytest

from liq_pipeline.evaluation.ticks import KEEP, Cursor, hashes_needed, plan_tick


def test_first_tick_evaluates_the_head_and_adds_partitions():
    plan = plan_tick(
        None, head=2_537, known_partitions=set(), evaluation_in_flight=False, range_size=1_000, confirmations=10
    )
    assert (plan.evaluate_block, plan.from_block, plan.cursor.block) == (2_537, 2_537, 2_537)
    assert plan.run_key == "evaluate-2537"
    # finished: 0-999 and 1000-1999 (1999 is 538 deep); open: 2000-2999 for this block's candidates
    assert plan.new_partitions == [
        "000000000000-000000000999",
        "000000001000-000000001999",
        "000000002000-000000002999",
    ]


def test_a_tick_covers_every_block_since_the_cursor():
    plan = plan_tick(
        Cursor(100), head=103, known_partitions=set(), evaluation_in_flight=False, range_size=1_000, confirmations=10
    )
    assert (plan.from_block, plan.evaluate_block, plan.cursor.block) == (101, 103, 103)


def _plan_first_range(cursor, *, head, evaluation_in_flight=False):
    """plan_tick with the first 1,000-block range already known."""
    return plan_tick(
        cursor,
        head=head,
        known_partitions={"000000000000-000000000999"},
        evaluation_in_flight=evaluation_in_flight,
        range_size=1_000,
        confirmations=10,
    )


def test_coalesces_while_an_evaluation_runs():
    busy = _plan_first_range(Cursor(100), head=103, evaluation_in_flight=True)
    assert busy.evaluate_block is None and busy.cursor.block == 100  # nothing launched, nothing skipped
    later = _plan_first_range(busy.cursor, head=106)
    assert (later.from_block, later.evaluate_block) == (101, 106)  # one run for the newest block covers all


def test_no_new_block_no_run():
    plan = _plan_first_range(Cursor(50), head=50)
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


# --- a new chain under the cursor ------------------------------------------------------------------------------
ANCHOR = 100  # the first block with state (the block a devnet was loaded at)


def _chain(name: str, head: int, shared_until: int = ANCHOR) -> dict[int, str]:
    """Block hashes of a chain: blocks up to `shared_until` are the common history, later ones are `name`'s own."""
    return {b: "0x" + (f"{b:064x}" if b <= shared_until else name * 8 + f"{b:056x}") for b in range(head + 1)}


def _tick(cursor: Cursor | None, chain: dict[int, str], in_flight: bool = False, anchor: int = ANCHOR):
    """One tick as the sensor runs it: the head's hash, then what `hashes_needed` asks for, read from `chain`."""
    head = max(chain)
    hashes = {head: chain[head]}
    while missing := hashes_needed(cursor, head, hashes, anchor):
        hashes |= {b: chain.get(b) for b in missing}
    return plan_tick(cursor, head, set(), in_flight, range_size=1_000, confirmations=10, hashes=hashes, anchor=anchor)


def _run(chain_name: str, blocks: list[int], shared_until: int = ANCHOR) -> tuple[Cursor, dict[int, str]]:
    """Ticks at each head of `blocks` on one chain: the cursor afterwards and the run keys launched."""
    cursor, keys = None, {}
    for head in blocks:
        plan = _tick(cursor, _chain(chain_name, head, shared_until))
        cursor = plan.cursor
        keys[plan.evaluate_block] = plan.run_key
    return cursor, keys


def test_the_cursor_carries_the_hash_of_its_block_and_of_the_anchor():
    chain = _chain("a", 103)
    plan = _tick(None, chain)
    assert plan.cursor.block == 103 and plan.cursor.hash == chain[103] == plan.block_hash
    assert plan.run_key == f"evaluate-103-{chain[103][2:10]}"
    assert dict(plan.cursor.seen) == {103: chain[103], ANCHOR: chain[ANCHOR]}
    assert Cursor.decode(plan.cursor.encode()) == plan.cursor
    assert Cursor.decode("57") == Cursor(57)  # a cursor written before cursors carried hashes
    # on the same chain a tick reads the head, the cursor's block and nothing else
    later = _chain("a", 106)
    assert hashes_needed(plan.cursor, 106, {106: later[106]}, ANCHOR) == [103]
    assert hashes_needed(plan.cursor, 106, {106: later[106], 103: later[103]}, ANCHOR) == []
    assert _tick(plan.cursor, later).rewound_to is None


def test_a_restarted_devnet_below_the_cursor_starts_again_after_the_block_it_was_loaded_at():
    old_cursor, _ = _run("a", [106, 109, 112, 115])
    plan = _tick(old_cursor, _chain("b", 104))  # the devnet reloaded at block 100, 4 new blocks since
    assert plan.rewound_to == ANCHOR  # the anchor is the last block both chains hold
    assert (plan.evaluate_block, plan.from_block) == (104, 101)
    assert plan.cursor.block == 104 and plan.cursor.hash == _chain("b", 104)[104]
    assert all(b <= ANCHOR or h == _chain("b", 104)[b] for b, h in plan.cursor.seen)  # nothing of chain a is kept
    assert plan.notice.startswith("new chain (head 104 < cursor 115): back to block 100")


def test_a_restarted_devnet_a_few_blocks_below_the_cursor_is_found_when_it_reaches_the_cursor():
    old_cursor, _ = _run("a", [103, 106])
    waiting = _tick(old_cursor, _chain("b", 102))  # within LAG_TOLERANCE, nothing remembered up to 102: could lag
    assert waiting.rewound_to is None and waiting.evaluate_block is None and waiting.cursor == old_cursor
    found = _tick(old_cursor, _chain("b", 106))  # at the cursor's height with another hash: evidence
    assert found.rewound_to == ANCHOR and found.evaluate_block == 106


def test_a_block_the_node_does_not_serve_yet_is_waited_for_not_a_new_chain():
    old_cursor, _ = _run("a", [103, 106])
    chain = _chain("a", 108)
    chain[106] = None  # the backend asked for block 106 is a little behind the one that gave the head
    plan = _tick(old_cursor, chain)
    assert plan.rewound_to is None and plan.evaluate_block is None and plan.cursor == old_cursor
    assert "behind" in plan.skipped_reason


def test_one_block_behind_on_the_second_tick_is_waited_for():
    first = _tick(None, _chain("a", 101)).cursor  # remembers block 101 and the anchor only
    plan = _tick(first, _chain("a", 100))
    assert plan.rewound_to is None and plan.cursor == first


@pytest.mark.parametrize(("head", "rewound"), [(107, None), (90, -1)])
def test_a_cursor_without_hashes_rewinds_only_past_the_lag_tolerance(head, rewound):
    plan = _tick(Cursor.decode("109"), _chain("a", head))
    assert plan.rewound_to == rewound


def test_the_same_block_number_on_the_new_chain_gets_its_own_run_key():
    old_cursor, old_keys = _run("a", [103, 106, 109])
    plan = _tick(old_cursor, _chain("b", 109))  # as high as the old cursor, another block
    assert plan.rewound_to == ANCHOR and plan.evaluate_block == 109 and plan.from_block == 101
    assert plan.run_key != old_keys[109] and plan.run_key.startswith("evaluate-109-")
    assert "block 109 is now" in plan.notice


def test_a_reorg_rolls_back_to_the_newest_block_both_chains_hold():
    old_cursor, _ = _run("a", [103, 106, 109], shared_until=200)  # chain a: every block so far is common history
    reorged = _chain("d", 110, shared_until=106)  # a reorg after block 106
    plan = _tick(old_cursor, reorged)
    assert plan.rewound_to == 106 and (plan.from_block, plan.evaluate_block) == (107, 110)
    assert plan.notice.startswith("new chain (block 109 is now")


def test_nothing_remembered_on_the_new_chain_starts_over_from_the_start_block():
    old_cursor, _ = _run("a", [103, 106])
    elsewhere = _chain("c", 150, shared_until=-1)  # another chain altogether: not even the anchor is the same
    plan = _tick(old_cursor, elsewhere)
    assert plan.rewound_to == -1 and (plan.from_block, plan.evaluate_block) == (0, 150)
    assert "starting over from block 0" in plan.notice
    assert dict(plan.cursor.seen) == {150: elsewhere[150], ANCHOR: elsewhere[ANCHOR]}
    # a cursor written before cursors carried hashes, above the head: the chain cannot be the same
    legacy = plan_tick(Cursor(180), 150, set(), False, 1_000, 10, hashes={150: elsewhere[150]})
    assert legacy.rewound_to == -1 and legacy.evaluate_block == 150


def test_a_node_that_lags_is_not_a_new_chain():
    old_cursor, _ = _run("a", [103, 106, 109])
    plan = _tick(old_cursor, _chain("a", 107))  # another backend, two blocks behind: block 106 is still there
    assert plan.rewound_to is None and plan.evaluate_block is None and plan.cursor == old_cursor
    assert "behind" in plan.skipped_reason


def test_the_chain_change_waits_for_the_evaluation_in_flight():
    old_cursor, _ = _run("a", [103, 106, 109])
    busy = _tick(old_cursor, _chain("b", 104), in_flight=True)
    assert busy.rewound_to is None and busy.evaluate_block is None and busy.cursor == old_cursor
    after = _tick(busy.cursor, _chain("b", 105))
    assert after.rewound_to == ANCHOR and after.evaluate_block == 105


def test_the_cursor_remembers_the_last_runs_and_the_anchor():
    cursor, _ = _run("a", list(range(101, 101 + 3 * KEEP)))
    blocks = cursor.blocks
    assert len(blocks) == KEEP + 1 and blocks[-1] == ANCHOR and blocks[0] == 100 + 3 * KEEP
