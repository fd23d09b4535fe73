"""Key layout (one cluster slot per market) and the per-market operations."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from liq_pipeline.cache import CacheOptions, MarketCache, MarketKeys, put_positions, set_kpis, write_candidates
from liq_pipeline.cache.admin import flush_market, market_keys, memory_by_key
from liq_pipeline_tests.cache.factories import candidate_frame

POOL = "0xA238Dd80C259a72e81d7e4664a9801593F98d1c5"


def _all_key_names(keys: MarketKeys) -> list[str]:
    names = [getattr(keys, name) for name in dir(MarketKeys) if isinstance(getattr(MarketKeys, name), property)]
    return [name for name in names if name.startswith("liq:") and not name.endswith("*")]


def test_every_key_of_a_market_is_in_one_cluster_slot():
    keys = MarketKeys.for_market(8453, POOL)
    names = [*_all_key_names(keys), keys.staging("eta", "abc")]
    assert len(names) >= 12
    assert {key_slot(name.encode()) for name in names} == {key_slot(b"{8453:" + POOL.lower().encode() + b"}")}
    assert keys.candidates_zset == f"liq:{{8453:{POOL.lower()}}}:predictive:eta:zset"
    other = MarketKeys.for_market(1, POOL)
    assert key_slot(other.kpis.encode()) != key_slot(keys.kpis.encode())  # markets spread over the cluster


def test_checksum_casing_does_not_change_the_keys():
    assert MarketKeys.for_market(8453, POOL) == MarketKeys.for_market(8453, POOL.lower())


@pytest.mark.parametrize(("chain_id", "pool"), [(0, POOL), (-1, POOL), (True, POOL), (8453, "0x123"), (8453, "pool")])
def test_bad_market_ids_are_refused(chain_id, pool):
    with pytest.raises(ValueError):
        MarketKeys.for_market(chain_id, pool)


def test_flush_market_removes_that_market_only(client):
    mine = MarketCache(client, MarketKeys.for_market(77, "0x" + "77" * 20), CacheOptions(max_pipeline=2))
    other = MarketCache(client, MarketKeys.for_market(78, "0x" + "77" * 20))
    for cache in (mine, other):
        write_candidates(cache, 1, candidate_frame(1, [1, 2]))
        set_kpis(cache, {"a": 1})
        put_positions(cache, 1, candidate_frame(1, [1]))
    assert set(memory_by_key(mine)) == set(market_keys(mine)) and all(v > 0 for v in memory_by_key(mine).values())
    assert flush_market(mine) == 5  # candidates ZSET, details, meta, KPIs, positions
    assert market_keys(mine) == []
    assert len(market_keys(other)) == 5
