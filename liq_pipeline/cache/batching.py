"""How commands reach Redis: REDIS_MAX_PIPELINE and REDIS_ENABLE_PIPELINING, in one place.

Writers split their data into chunks of at most `max_pipeline` entries (members, hash fields, users); a chunk is a
few variadic commands (one ZADD + one HSET for candidates). With pipelining on, a chunk's commands go in one round
trip; with it off, every command goes alone and no MULTI is used (for proxies without pipelines or transactions).
Variadic commands rather than one command per entry: redis-py packs commands in Python, ~10 us each, so 10k
candidates as 20k commands would cost ~0.2 s where 40 variadic ones cost a few ms.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import redis

from .context import MarketCache

log = logging.getLogger(__name__)

Command = tuple[Any, ...]
_WATCH_ATTEMPTS = 5


def chunked(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def send_chunks(cache: MarketCache, chunks: Iterable[Sequence[Command]]) -> None:
    client, stats = cache.client, cache.stats
    for chunk in chunks:
        if not chunk:
            continue
        if cache.options.pipelining:
            pipe = client.pipeline(transaction=False)
            for command in chunk:
                pipe.execute_command(*command)
            pipe.execute()
            stats.round_trips += 1
        else:
            for command in chunk:
                client.execute_command(*command)
                stats.round_trips += 1
        stats.commands += len(chunk)


def commit_if_not_older(cache: MarketCache, meta_key: str, block: int, commands: Sequence[Command]) -> bool:
    """Run `commands` unless `meta_key`'s `block` field is newer than `block`; False when skipped.

    This keeps a slow writer (a Dagster backfill of an old range) from overwriting what the watcher wrote for a
    newer block. With pipelining on: WATCH + MULTI/EXEC, so check and write are atomic and readers see all of the
    commands or none. With it off: check, then the commands one by one (a race between two writers is possible).
    """
    client, stats = cache.client, cache.stats
    if not cache.options.pipelining:
        current = client.hget(meta_key, "block")
        stats.round_trips += 1
        if current is not None and int(current) > block:
            return False
        for command in commands:
            client.execute_command(*command)
            stats.round_trips += 1
        stats.commands += len(commands) + 1
        return True
    with client.pipeline(transaction=True) as pipe:
        for _ in range(_WATCH_ATTEMPTS):
            try:
                pipe.watch(meta_key)
                current = pipe.hget(meta_key, "block")
                stats.round_trips += 2
                if current is not None and int(current) > block:
                    pipe.unwatch()
                    return False
                pipe.multi()
                for command in commands:
                    pipe.execute_command(*command)
                pipe.execute()
                stats.round_trips += 1
                stats.commands += len(commands) + 2
                return True
            except redis.WatchError:
                continue  # another writer committed in between: look at its block again
    log.warning("gave up writing %s for block %d: another writer kept replacing it", meta_key, block)
    return False
