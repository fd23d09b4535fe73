"""`liq bench-cache` on a small run against a real embedded Redis."""

from __future__ import annotations

from liq_pipeline.bench.cache import run_cache_bench

from .contract import assert_report


def test_cache_bench_small():
    result = run_cache_bench(users=500, candidates=50, repeat=1, per_user=True)
    assert_report(result, "cache", {"users": 500, "candidates": 50, "repeat": 1, "per_user": True})
    assert (result["users"], result["candidates"], result["repeat"]) == (500, 50, 1)
    assert result["columns"] > 1
    lz4, plain = result["positions_lz4"], result["positions_uncompressed"]
    for timings in (lz4, plain):
        assert set(timings) == {"value_mb", "encode_ms", "decode_ms", "put_ms", "get_ms"}
        assert all(value >= 0 for value in timings.values())
    assert lz4["value_mb"] <= plain["value_mb"]
    for key in (
        "positions_per_user_keys_put_ms",
        "candidates_write_pipelined_ms",
        "candidates_write_one_by_one_ms",
        "candidates_read_all_ms",
        "candidates_read_top100_ms",
    ):
        assert result[key] > 0, key
    assert result["redis_used_memory_mb"] > 0


def test_cache_bench_skips_the_per_user_layout_unless_asked():
    assert "positions_per_user_keys_put_ms" not in run_cache_bench(users=100, candidates=10, repeat=1)
