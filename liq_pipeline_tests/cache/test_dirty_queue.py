"""The dirty-user stream: consumer group, acknowledgement after evaluation, redelivery after a crash."""

from __future__ import annotations

import time

from liq_pipeline.cache import DirtyQueue


def test_publish_consume_ack(cache):
    queue = DirtyQueue(cache)
    first = queue.publish(10, ["0xa", "0xb", "0xa"])
    queue.publish(11, ["0xc"])
    assert queue.publish(12, []) is None
    entries = queue.consume("engine", "w1", count=10)
    head = entries[0]
    assert (head.id, head.block, head.users, head.redelivered) == (first, 10, ["0xa", "0xb"], False)
    assert [e.block for e in entries] == [10, 11]
    assert queue.pending_count("engine") == 2
    assert queue.ack("engine", [e.id for e in entries]) == 2
    assert queue.pending_count("engine") == 0
    assert queue.consume("engine", "w1", count=10) == []


def test_a_restarted_consumer_gets_its_unacknowledged_entries_back(cache):
    queue = DirtyQueue(cache)
    for block in (1, 2, 3):
        queue.publish(block, [f"0x{block}"])
    taken = queue.consume("engine", "w1", count=2)
    queue.ack("engine", [taken[0].id])  # block 1 evaluated; the process dies while evaluating block 2
    restarted = DirtyQueue(cache)  # a new process, same consumer name
    again = restarted.consume("engine", "w1", count=10)
    assert [(e.block, e.redelivered) for e in again] == [(2, True)]
    restarted.ack("engine", [e.id for e in again])
    fresh = restarted.consume("engine", "w1", count=10)
    assert [(e.block, e.redelivered) for e in fresh] == [(3, False)]
    restarted.ack("engine", [e.id for e in fresh])
    assert restarted.consume("engine", "w1", count=10) == []


def test_entries_of_a_consumer_that_never_returns_are_claimed_once_idle(cache):
    queue = DirtyQueue(cache, claim_idle_ms=50)
    queue.publish(5, ["0xdead"])
    lost = queue.consume("engine", "crashed", count=10)
    assert len(lost) == 1
    other = DirtyQueue(cache, claim_idle_ms=50)
    other.consume("engine", "w2")  # its own backlog is empty; not idle long enough to claim yet
    assert queue.pending_count("engine") == 1
    time.sleep(0.08)
    claimed = other.consume("engine", "w2")
    assert [(e.block, e.users, e.redelivered) for e in claimed] == [(5, ["0xdead"], True)]
    other.ack("engine", [claimed[0].id])
    assert queue.pending_count("engine") == 0


def test_groups_are_independent_and_a_lost_group_is_recreated(cache):
    queue = DirtyQueue(cache)
    queue.publish(1, ["0xa"])
    assert len(queue.consume("engine", "w")) == 1
    assert len(queue.consume("audit", "w")) == 1  # a second group sees the same entries
    cache.client.xgroup_destroy(queue.key, "engine")  # e.g. a server restarted without persistence
    queue.publish(2, ["0xb"])
    assert [e.block for e in queue.consume("engine", "w")] == [1, 2]


def test_a_trimmed_pending_entry_is_dropped_not_returned(cache):
    queue = DirtyQueue(cache)
    queue.publish(1, ["0xa"])
    taken = queue.consume("engine", "w")
    cache.client.xdel(queue.key, taken[0].id)
    assert DirtyQueue(cache).consume("engine", "w") == []
    assert queue.pending_count("engine") == 0
