"""Trends are recomputed at a block where a price moved (at most every TREND_EVERY blocks), and at least every
TREND_MAX_AGE blocks: a block without price moves keeps them, so it can carry the previous values."""

from __future__ import annotations

import dataclasses

import polars as pl

from liq_pipeline.evaluation.tracker import TREND_EVERY, TREND_MAX_AGE, Tracker
from liq_pipeline.risk.synthetic import sample
from liq_pipeline.risk.versions import rules_for


def test_trends_wait_for_a_price_move_or_their_maximum_age():
    market = sample(10, seed=1).market
    tracker = Tracker(None, None, rules_for("3.0"), pl.DataFrame(), block=0)
    recomputed = []
    tracker._compute_trends = lambda: recomputed.append(tracker.block) or {}
    moved = dataclasses.replace(
        market, reserves=tuple(dataclasses.replace(r, price=r.price + 1) for r in market.reserves)
    )
    for block in range(1, 80):
        tracker.block = block
        price_move = block in (5, 12, 14)
        tracker._state = dataclasses.replace(moved if price_move else market, block=block)
        tracker.trends()
    # first call, then the price move at 12 (TREND_EVERY after 1 not yet at 5), then 30 blocks without any
    assert TREND_EVERY == 10 and TREND_MAX_AGE == 30
    assert recomputed == [1, 12, 42, 72]


def test_the_watcher_computes_trends_ahead_off_the_hot_path():
    market = sample(10, seed=1).market
    tracker = Tracker(None, None, rules_for("3.0"), pl.DataFrame(), block=0)
    computed, applied = [], []
    tracker._compute_trends = lambda: computed.append(tracker.block) or {"at": tracker.block}
    moved = dataclasses.replace(
        market, reserves=tuple(dataclasses.replace(r, price=r.price + 1) for r in market.reserves)
    )
    for block in range(1, 80):
        tracker.block = block
        tracker._state = dataclasses.replace(moved if block in (5, 12, 14) else market, block=block)
        before = len(computed)
        trends = tracker.trends()  # the block's evaluation
        assert len(computed) == before or block == 1  # only the very first trends are computed on the path
        if tracker._trends_block == block:
            applied.append((block, trends["at"]))
        tracker.after_block()  # after the block's candidates are written
    # applied at the same blocks as before, each computed a few blocks ahead
    assert [b for b, _ in applied] == [1, 12, 42, 72]
    assert [at for _, at in applied] == [1, 10, 21, 51]
