"""The borrower index (BORROWERS_INDEX_MODE=redis): a ZSET, member = user, score = current HF.

Range reads by score answer "who is below HF x" without the positions frame. Incremental updates ZADD the users
that changed; a full rescan replaces the whole index atomically (staging key + RENAME, like the candidates).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable

import polars as pl

from .batching import chunked, commit_if_not_older, send_chunks
from .codec import score_strings
from .context import MarketCache

INDEX_SCHEMA = {"user": pl.String, "hf": pl.Float64}


def _pairs(frame: pl.DataFrame, hf_column: str) -> tuple[list[bytes], list[str]]:
    users = [user.encode() for user in frame["user"].cast(pl.String)]
    # No debt gives HF = inf (Redis stores it); an unknown (NaN, null) HF sorts last too.
    return users, score_strings(frame[hf_column])


def _zadd_chunks(cache: MarketCache, key: str, users: list[bytes], hfs: list[str]):
    for part in chunked(range(len(users)), cache.options.max_pipeline):
        command: list = ["ZADD", key]
        for i in part:
            command += [hfs[i], users[i]]
        yield [tuple(command)]


def update_borrower_index(cache: MarketCache, frame: pl.DataFrame, hf_column: str = "hf") -> None:
    """Set the HF of the users in `frame` (columns `user` and `hf_column`); other users keep theirs."""
    users, hfs = _pairs(frame, hf_column)
    send_chunks(cache, _zadd_chunks(cache, cache.keys.borrowers_index, users, hfs))


def remove_borrowers(cache: MarketCache, users: Iterable[str]) -> None:
    users = list(users)
    key = cache.keys.borrowers_index
    send_chunks(cache, ([("ZREM", key, *part)] for part in chunked(users, cache.options.max_pipeline)))


def replace_borrower_index(cache: MarketCache, block: int, frame: pl.DataFrame, hf_column: str = "hf") -> bool:
    """Make `frame` the whole index as of `block` (users not in it are dropped); False if a newer one is live."""
    keys = cache.keys
    users, hfs = _pairs(frame, hf_column)
    meta = ("HSET", keys.borrowers_meta, "block", block, "count", len(set(users)), "updated_at", f"{cache.clock():.3f}")
    if not users:
        return commit_if_not_older(cache, keys.borrowers_meta, block, [("DEL", keys.borrowers_index), meta])
    staged = keys.staging("borrowers", uuid.uuid4().hex[:12])
    chunks = list(_zadd_chunks(cache, staged, users, hfs))
    chunks[0].append(("EXPIRE", staged, cache.options.staging_ttl_sec))
    send_chunks(cache, chunks)
    commands = [("RENAME", staged, keys.borrowers_index), ("PERSIST", keys.borrowers_index), meta]
    if commit_if_not_older(cache, keys.borrowers_meta, block, commands):
        return True
    send_chunks(cache, [[("DEL", staged)]])
    return False


def read_borrowers(
    cache: MarketCache, min_hf: float = -math.inf, max_hf: float = math.inf, limit: int | None = None
) -> pl.DataFrame:
    """Users with min_hf <= HF <= max_hf, lowest HF first, at most `limit`."""
    if limit is not None and limit <= 0:
        return pl.DataFrame(schema=INDEX_SCHEMA)
    pairs = cache.client.zrangebyscore(
        cache.keys.borrowers_index,
        "-inf" if math.isinf(min_hf) else min_hf,
        "+inf" if math.isinf(max_hf) else max_hf,
        start=None if limit is None else 0,
        num=limit,
        withscores=True,
    )
    return pl.DataFrame(
        {"user": [member.decode() for member, _ in pairs], "hf": [score for _, score in pairs]}, schema=INDEX_SCHEMA
    )


def borrower_count(cache: MarketCache) -> int:
    return int(cache.client.zcard(cache.keys.borrowers_index))
