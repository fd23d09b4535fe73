"""Candidates: the ZSET `...:predictive:eta:zset` (score = ETA seconds, member = `user:scenario`) and their rows.

A block's candidates REPLACE the previous set: they are written to staging keys in chunks, then renamed over the
live keys in one MULTI/EXEC, so a reader sees the previous block's set or the new one, never a mix, and candidates
that disappeared are gone with the old key. A write for a block older than the live one is skipped.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence

import msgpack
import polars as pl

from ..risk.evaluation import CANDIDATE_SCHEMA
from .batching import chunked, commit_if_not_older, send_chunks
from .codec import details_packer, score_strings, unpack
from .columnar_msgpack import pack_maps
from .context import MarketCache
from .keys import candidate_member

# ZSET range and details in one atomic script: read as two commands, a replacement landing between them would mix
# one block's members with the next block's details (a test caught exactly that). The details come back as ONE
# msgpack array (Redis' bundled cmsgpack): redis-py's pure-Python reply parser took ~190 ms for 10k candidates as
# a RESP array, ~30 ms this way. HMGET in slices: Lua's unpack() is limited to a few thousand values.
_READ_SCRIPT = """
local pairs = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local details = {}
for i = 1, #pairs, 1000 do
  local got = redis.call('HMGET', KEYS[2], unpack(pairs, i, math.min(i + 999, #pairs)))
  for j = 1, #got do details[#details + 1] = got[j] end
end
return cmsgpack.pack(details)
"""


def _encoded(rows: pl.DataFrame | Mapping[str, Sequence]) -> tuple[list[str], list[str], list[bytes]]:
    """Members (`user:scenario`), scores (ETA) and msgpack details of candidate rows, as the arguments Redis takes.
    A frame (any columns, nulls allowed) is packed row by row; the watcher's columns (Evaluation.candidate_columns:
    numpy arrays and lists of str, no nulls) column by column, into the same bytes (cache/columnar_msgpack.py)."""
    frame = isinstance(rows, pl.DataFrame)
    users, scenarios = rows["user"], rows["scenario"]
    if frame:
        users, scenarios = users.to_list(), scenarios.to_list()
    members = [candidate_member(user, scenario) for user, scenario in zip(users, scenarios, strict=True)]
    if not frame:
        return members, score_strings(rows["eta_sec"]), pack_maps(rows)
    packer = details_packer()  # one packer for the rows: packb() builds a new one per call (~30 % more)
    details = [packer.pack(dict(zip(rows.columns, row, strict=True))) for row in rows.iter_rows()]
    return members, score_strings(rows["eta_sec"]), details


def write_candidates(cache: MarketCache, block: int, frame: pl.DataFrame) -> bool:
    """Make `frame` (CANDIDATE_SCHEMA rows, any extra columns kept) the live candidate set of `block`.

    Returns False when a newer block's set is already live (nothing is changed then).
    """
    missing = {"user", "scenario", "eta_sec"} - set(frame.columns)
    if missing:
        raise ValueError(f"candidate frame lacks column(s) {', '.join(sorted(missing))}")
    keys, ttl = cache.keys, cache.options.staging_ttl_sec
    meta = ["HSET", keys.candidates_meta, "block", block, "updated_at", f"{cache.clock():.3f}"]
    if frame.height == 0:
        commands = [("DEL", keys.candidates_details), ("DEL", keys.candidates_zset), (*meta, "count", 0)]
        return commit_if_not_older(cache, keys.candidates_meta, block, commands)

    members, scores, details = _encoded(frame)

    token = uuid.uuid4().hex[:12]
    staged_zset, staged_details = keys.staging("eta", token), keys.staging("candidates", token)

    def chunk_commands():
        for number, start in enumerate(range(0, len(members), cache.options.max_pipeline)):
            part = slice(start, start + cache.options.max_pipeline)
            chunk = [
                ("ZADD", staged_zset, *_interleaved(scores[part], members[part])),
                ("HSET", staged_details, *_interleaved(members[part], details[part])),
            ]
            if number == 0:  # EXPIRE needs the keys to exist: after the first ZADD/HSET
                chunk += [("EXPIRE", staged_zset, ttl), ("EXPIRE", staged_details, ttl)]
            yield chunk

    send_chunks(cache, chunk_commands())
    commands = [
        # Details first: with pipelining off (no MULTI) a reader may briefly see new details under the old ZSET,
        # never a ZSET member whose details are missing for a candidate that is still live.
        ("RENAME", staged_details, keys.candidates_details),
        ("PERSIST", keys.candidates_details),  # RENAME carries the staging TTL over
        ("RENAME", staged_zset, keys.candidates_zset),
        ("PERSIST", keys.candidates_zset),
        (*meta, "count", len(set(members))),
    ]
    if commit_if_not_older(cache, keys.candidates_meta, block, commands):
        return True
    send_chunks(cache, [[("DEL", staged_zset, staged_details)]])
    return False


def read_candidates(cache: MarketCache, limit: int | None = None, max_eta: float = math.inf) -> pl.DataFrame:
    """Live candidates with ETA <= max_eta, soonest first (ties by member), at most `limit` rows."""
    if limit is not None and limit <= 0:
        return pl.DataFrame(schema=CANDIDATE_SCHEMA)
    keys = cache.keys
    script = cache.client.register_script(_READ_SCRIPT)  # EVALSHA, EVAL once if the server lacks it
    upper = "+inf" if math.isinf(max_eta) else repr(float(max_eta))
    reply = script(keys=[keys.candidates_zset, keys.candidates_details], args=[upper, limit or -1])
    cache.stats.round_trips += 1
    # raw: the details are msgpack bytes themselves. A member without details (false) exists only mid-replacement
    # with pipelining off (no MULTI): it is being removed.
    rows = [unpack(value) for value in msgpack.unpackb(reply, raw=True) if value]
    if not rows:
        return pl.DataFrame(schema=CANDIDATE_SCHEMA)
    overrides = {name: dtype for name, dtype in CANDIDATE_SCHEMA.items() if name in rows[0]}
    return pl.from_dicts(rows, schema_overrides=overrides, infer_schema_length=None)


def candidates_block(cache: MarketCache) -> int | None:
    """The block of the live candidate set (None before the first write)."""
    value = cache.client.hget(cache.keys.candidates_meta, "block")
    return None if value is None else int(value)


def write_candidate_changes(
    cache: MarketCache,
    block: int,
    upserts: pl.DataFrame | Mapping[str, Sequence] | None,
    removed: list[str],
    rescored: tuple[list[str], list[str]] = ([], []),
) -> bool:
    """Apply one block's CHANGES to the live set: add or update `upserts` (candidate rows with their details: a
    frame, or Evaluation.candidate_columns; None: none), move the scores of `rescored` (members, ETA strings)
    whose details stay, remove `removed` (members `user:scenario`), in one MULTI/EXEC with the block's meta, so
    readers see the previous block's set or this one. The watcher's path: rewriting thousands of unchanged
    candidates (~50 ms for 4.5k) would eat its budget. False when a newer block is already live."""
    keys = cache.keys
    commands: list[tuple] = []
    if upserts is not None and len(upserts["user"]):
        members, scores, details = _encoded(upserts)
        for start in range(0, len(members), cache.options.max_pipeline):
            end = start + cache.options.max_pipeline
            commands += [
                ("ZADD", keys.candidates_zset, *_interleaved(scores[start:end], members[start:end])),
                ("HSET", keys.candidates_details, *_interleaved(members[start:end], details[start:end])),
            ]
    moved_members, moved_scores = rescored
    for start in range(0, len(moved_members), cache.options.max_pipeline):
        end = start + cache.options.max_pipeline
        commands.append(
            ("ZADD", keys.candidates_zset, "XX", *_interleaved(moved_scores[start:end], moved_members[start:end]))
        )
    for part in chunked(removed, cache.options.max_pipeline):
        commands += [("ZREM", keys.candidates_zset, *part), ("HDEL", keys.candidates_details, *part)]
    commands.append(("HSET", keys.candidates_meta, "block", block, "updated_at", f"{cache.clock():.3f}"))
    return commit_if_not_older(cache, keys.candidates_meta, block, commands)


def _interleaved(first: list, second: list) -> list:
    """[first[0], second[0], first[1], ...]: a variadic command's pairs, built by slice assignment."""
    pairs = [None] * (2 * len(first))
    pairs[::2], pairs[1::2] = first, second
    return pairs
