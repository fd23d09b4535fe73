"""`liq bench-cache [--users N] [--candidates N] [--repeat N] [--per-user]`: cache timings against a real embedded
Redis, medians of `repeat` runs. The server is started in a temporary folder and stopped at the end; nothing else
is touched.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import polars as pl

from ..cache.candidates import read_candidates, write_candidates
from ..cache.client import connect
from ..cache.codec import frame_to_ipc, ipc_to_frame, pack
from ..cache.context import CacheOptions, MarketCache
from ..cache.keys import MarketKeys
from ..cache.positions import get_positions, put_positions
from ..risk.evaluation import CANDIDATE_SCHEMA
from ..risk.synthetic import sample
from .report import BenchRun, median_seconds
from .services import scratch_redis

# One candidate row, repeated: only the user and the ETA vary.
_CANDIDATE_ROW = {
    "scenario": "adverse",
    "hf_current": 1.01,
    "hf_scenario": 0.99,
    "hf_projected": 0.98,
    "liquidatable_now": False,
    "debt_reserve": 1,
    "collateral_reserve": 0,
    "close_factor": 0.5,
    "debt_to_cover_base": 1000.0,
    "collateral_seized_base": 1050.0,
    "protocol_fee_base": 5.0,
    "expected_profit_base": 45.0,
}


def _candidates(count: int, block: int) -> pl.DataFrame:
    columns = {name: [value] * count for name, value in _CANDIDATE_ROW.items()}
    columns |= {
        "user": [f"0x{i:040x}" for i in range(count)],
        "block": [block] * count,
        "eta_sec": [float(i % 180) for i in range(count)],
    }
    return pl.DataFrame(columns, schema=CANDIDATE_SCHEMA)


def run_cache_bench(users: int = 100_000, candidates: int = 10_000, repeat: int = 5, per_user: bool = False) -> dict:
    """Encode/decode/put/get of the positions value (lz4 and uncompressed), candidate writes (pipelined and one by
    one) and reads; with `per_user`, also the layout not chosen (one key per user; slow)."""
    run = BenchRun("cache", {"users": users, "candidates": candidates, "repeat": repeat, "per_user": per_user})

    def ms(function: Callable[[], object]) -> float:
        return round(median_seconds(function, repeat) * 1000, 2)

    with scratch_redis("liq-cache-bench-", save_rules=()) as url:  # no snapshots during the timings
        client = connect(url)
        keys = MarketKeys.for_market(31337, "0x" + "11" * 20)
        positions = sample(users).positions
        block = itertools.count(1)  # every write is for a newer block, as in the watcher
        out: dict = {"users": users, "columns": positions.width, "candidates": candidates, "repeat": repeat}
        for compression in ("lz4", "uncompressed"):
            cache = MarketCache(client, keys, CacheOptions(ipc_compression=compression))
            data = frame_to_ipc(positions, compression)
            out[f"positions_{compression}"] = {
                "value_mb": round(len(data) / 1e6, 2),
                "encode_ms": ms(lambda c=compression: frame_to_ipc(positions, c)),
                "decode_ms": ms(lambda d=data: ipc_to_frame(d)),
                "put_ms": ms(lambda c=cache: put_positions(c, next(block), positions)),
                "get_ms": ms(lambda c=cache: get_positions(c)),
            }
        if per_user:  # the layout not chosen: one msgpack hash field per user, pipelined 500 at a time
            rows = positions.with_columns(pl.col(pl.Int128).cast(pl.String)).iter_rows()
            packed = [(row[0], pack(row[1:])) for row in rows]

            def write_per_user() -> None:
                pipe = client.pipeline(transaction=False)
                for i, (user, value) in enumerate(packed, 1):
                    pipe.set(keys.key(f"bench:user:{user}"), value)
                    if i % 500 == 0:
                        pipe.execute()
                pipe.execute()

            out["positions_per_user_keys_put_ms"] = ms(write_per_user)
        frame = _candidates(candidates, 1)
        for pipelining in (True, False):
            cache = MarketCache(client, keys, CacheOptions(pipelining=pipelining, max_pipeline=500))
            name = "pipelined" if pipelining else "one_by_one"
            out[f"candidates_write_{name}_ms"] = ms(lambda c=cache: write_candidates(c, next(block), frame))
        cache = MarketCache(client, keys)
        out["candidates_read_all_ms"] = ms(lambda: read_candidates(cache))
        out["candidates_read_top100_ms"] = ms(lambda: read_candidates(cache, limit=100))
        out["redis_used_memory_mb"] = round(client.info("memory")["used_memory"] / 1e6, 1)
        client.close()
    return run.report(out)
