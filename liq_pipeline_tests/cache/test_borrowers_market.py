"""Borrower index ZSET, reserve state and price windows."""

from __future__ import annotations

import math

import polars as pl
from polars.testing import assert_frame_equal

from liq_pipeline.cache import (
    borrower_count,
    get_price_windows,
    get_reserves,
    put_price_windows,
    put_reserves,
    read_borrowers,
    remove_borrowers,
    replace_borrower_index,
    update_borrower_index,
)
from liq_pipeline.cache.market_state import price_window_blocks
from liq_pipeline.risk.price_window import price_window_stats
from liq_pipeline.risk.synthetic import sample_market_state, sample_price_history


def _index(pairs):
    return pl.DataFrame({"user": [u for u, _ in pairs], "hf": [h for _, h in pairs]})


def test_index_update_range_and_remove(make_cache):
    cache = make_cache(max_pipeline=2)
    update_borrower_index(cache, _index([("0xa", 1.2), ("0xb", 0.97), ("0xc", math.inf), ("0xd", float("nan"))]))
    update_borrower_index(cache, _index([("0xa", 1.001)]))
    assert read_borrowers(cache, max_hf=1.05).rows() == [("0xb", 0.97), ("0xa", 1.001)]
    assert read_borrowers(cache, min_hf=1.0, limit=1).rows() == [("0xa", 1.001)]
    assert read_borrowers(cache)["user"].to_list()[-2:] == ["0xc", "0xd"]  # no debt / unknown: last
    remove_borrowers(cache, ["0xb", "0xzz"])
    assert borrower_count(cache) == 3
    assert read_borrowers(cache, limit=0).height == 0


def test_index_replacement_is_whole_and_guarded_by_block(cache):
    update_borrower_index(cache, _index([("0xold", 1.5)]))
    assert replace_borrower_index(cache, 20, _index([("0xa", 1.1), ("0xb", 2.0)])) is True
    assert set(read_borrowers(cache)["user"]) == {"0xa", "0xb"}
    assert replace_borrower_index(cache, 19, _index([("0xz", 1.0)])) is False
    assert set(read_borrowers(cache)["user"]) == {"0xa", "0xb"}
    assert cache.client.ttl(cache.keys.borrowers_index) == -1  # the staging TTL did not come along
    assert replace_borrower_index(cache, 21, _index([])) is True
    assert borrower_count(cache) == 0


def test_reserve_state_keeps_ray_integers_exactly(cache):
    market = sample_market_state()
    reserves = {
        r.asset: {"index": r.liquidity_index, "rate": r.variable_borrow_rate, "price": r.price} for r in market.reserves
    }
    assert get_reserves(cache) is None
    put_reserves(cache, 500, reserves)
    snapshot = get_reserves(cache)
    assert snapshot.block == 500 and snapshot.reserves == reserves
    assert max(v["index"] for v in snapshot.reserves.values()) > 2**64  # really past msgpack's int range
    assert put_reserves(cache, 499, {}) is False and get_reserves(cache).block == 500


def test_price_windows_round_trip_into_the_window_statistics(make_cache):
    cache = make_cache(max_pipeline=3)  # 10 assets -> several HSET chunks
    market = sample_market_state()
    history = sample_price_history(market, observations=21)
    put_price_windows(cache, 77, history)
    back = get_price_windows(cache)
    assert_frame_equal(back, history.sort("asset", "timestamp"))
    assert_frame_equal(price_window_stats(back, 20, 5).sort("asset"), price_window_stats(history, 20, 5).sort("asset"))
    assert set(get_price_windows(cache, ["WETH", "nope"])["asset"]) == {"WETH"}
    newer = history.filter(pl.col("asset") == "WETH").with_columns(pl.col("price") * 2)
    put_price_windows(cache, 78, newer)
    assert price_window_blocks(cache)["WETH"] == 78 and price_window_blocks(cache)["USDC"] == 77
