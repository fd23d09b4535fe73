"""Cache timings against a real embedded Redis: python -m liq_pipeline.bench.cache [--users N] [--candidates N].

Prints JSON. Medians of --repeat runs. Started in a temporary folder and stopped at the end; nothing else touched.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from ..cache.candidates import read_candidates, write_candidates
from ..cache.client import connect
from ..cache.codec import frame_to_ipc, ipc_to_frame, pack
from ..cache.context import CacheOptions, MarketCache
from ..cache.keys import MarketKeys
from ..cache.positions import get_positions, put_positions
from ..cache.server import EmbeddedRedis
from ..risk.engine import CANDIDATE_SCHEMA
from ..risk.synthetic import sample


def _median(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)


def _candidates(count: int, block: int) -> pl.DataFrame:
    users = [f"0x{i:040x}" for i in range(count)]
    return pl.DataFrame(
        {
            "user": users,
            "scenario": ["adverse"] * count,
            "block": [block] * count,
            "hf_current": [1.01] * count,
            "hf_scenario": [0.99] * count,
            "hf_projected": [0.98] * count,
            "eta_sec": [float(i % 180) for i in range(count)],
            "liquidatable_now": [False] * count,
            "debt_reserve": [1] * count,
            "collateral_reserve": [0] * count,
            "close_factor": [0.5] * count,
            "debt_to_cover_base": [1000.0] * count,
            "collateral_seized_base": [1050.0] * count,
            "protocol_fee_base": [5.0] * count,
            "expected_profit_base": [45.0] * count,
        },
        schema=CANDIDATE_SCHEMA,
    )


def run(users: int, candidates: int, repeat: int, per_user: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="liq-cache-bench-") as folder:
        server = EmbeddedRedis(Path(folder) / "redis", save_rules=())  # no snapshots during the timings
        try:
            client = connect(server.url())
            keys = MarketKeys.for_market(31337, "0x" + "11" * 20)
            positions = sample(users).positions
            block = itertools.count(1)  # every write is for a newer block, as in the watcher
            out: dict = {"users": users, "columns": positions.width, "candidates": candidates, "repeat": repeat}
            for compression in ("lz4", "uncompressed"):
                cache = MarketCache(client, keys, CacheOptions(ipc_compression=compression))
                data = frame_to_ipc(positions, compression)
                out[f"positions_{compression}"] = {
                    "value_mb": round(len(data) / 1e6, 2),
                    "encode_ms": _median(lambda c=compression: frame_to_ipc(positions, c), repeat),
                    "decode_ms": _median(lambda d=data: ipc_to_frame(d), repeat),
                    "put_ms": _median(lambda c=cache: put_positions(c, next(block), positions), repeat),
                    "get_ms": _median(lambda c=cache: get_positions(c), repeat),
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

                out["positions_per_user_keys_put_ms"] = _median(write_per_user, repeat)
            frame = _candidates(candidates, 1)
            for pipelining in (True, False):
                cache = MarketCache(client, keys, CacheOptions(pipelining=pipelining, max_pipeline=500))
                name = "pipelined" if pipelining else "one_by_one"
                out[f"candidates_write_{name}_ms"] = _median(
                    lambda c=cache: write_candidates(c, next(block), frame), repeat
                )
            cache = MarketCache(client, keys)
            out["candidates_read_all_ms"] = _median(lambda: read_candidates(cache), repeat)
            out["candidates_read_top100_ms"] = _median(lambda: read_candidates(cache, limit=100), repeat)
            out["redis_used_memory_mb"] = round(client.info("memory")["used_memory"] / 1e6, 1)
            return out
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--per-user", action="store_true", help="also time the per-user-keys layout (slow)")
    args = parser.parse_args()
    print(json.dumps(run(args.users, args.candidates, args.repeat, args.per_user), indent=2))


if __name__ == "__main__":
    main()
