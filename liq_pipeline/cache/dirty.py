"""The dirty-user queue: a Redis Stream with a consumer group (at-least-once delivery).

Producers (event readers) publish one entry per block: the users whose positions changed. The evaluator reads
through a consumer group and acknowledges an entry only after it evaluated those users, so an entry being
evaluated when a consumer crashed is not lost:
- the same consumer name, restarted, first gets back its own unacknowledged entries (XREADGROUP from id 0);
- entries left by a consumer that never comes back are claimed by any live one once idle for `claim_idle_ms`
  (XAUTOCLAIM, Redis >= 6.2).
Evaluation is idempotent (it recomputes a user's HF from the latest positions), so a redelivery costs only time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from .codec import pack, unpack
from .context import MarketCache


@dataclass(frozen=True)
class DirtyEntry:
    id: str
    block: int
    users: list[str]
    redelivered: bool  # came from a pending list (own after a restart, or claimed from another consumer)


class DirtyQueue:
    """Publish, consume and acknowledge dirty-user entries of one market."""

    def __init__(self, cache: MarketCache, claim_idle_ms: int = 30_000) -> None:
        self.cache = cache
        self.claim_idle_ms = claim_idle_ms
        self._groups: set[str] = set()
        # Per (group, consumer): where the replay of our own pending entries is, None once it is done.
        self._own_cursor: dict[tuple[str, str], str | None] = {}
        self._claim_cursor: dict[str, str] = {}

    @property
    def key(self) -> str:
        return self.cache.keys.dirty_stream

    def publish(self, block: int, users: Iterable[str]) -> str | None:
        """Append the users that changed at `block`; returns the entry id (None when there are no users)."""
        users = list(dict.fromkeys(users))
        if not users:
            return None
        entry = {"block": block, "users": pack(users)}
        entry_id = self.cache.client.xadd(self.key, entry, maxlen=self.cache.options.dirty_maxlen, approximate=True)
        self.cache.stats.round_trips += 1
        return entry_id.decode()

    def ensure_group(self, group: str, start_id: str = "0") -> None:
        """Create the group (and the stream) if missing; start_id "0": a new group also sees existing entries."""
        try:
            self.cache.client.xgroup_create(self.key, group, id=start_id, mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._groups.add(group)

    def consume(self, group: str, consumer: str, count: int = 100, block_ms: int | None = None) -> list[DirtyEntry]:
        """Up to `count` entries for `consumer`: its own unacknowledged ones first (once after a start), then
        entries idle at a dead consumer, then new ones (waiting up to `block_ms` for them; None = no wait)."""
        if group not in self._groups:
            self.ensure_group(group)
        try:
            return self._consume(group, consumer, count, block_ms)
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            # The server lost the group (restarted without persistence, or the stream was flushed): recreate it.
            self._groups.discard(group)
            self.ensure_group(group)
            return self._consume(group, consumer, count, block_ms)

    def _consume(self, group: str, consumer: str, count: int, block_ms: int | None) -> list[DirtyEntry]:
        client = self.cache.client
        me = (group, consumer)
        cursor = self._own_cursor.get(me, "0")
        if cursor is not None:
            reply = client.xreadgroup(group, consumer, {self.key: cursor}, count=count)
            entries = _entries(reply, redelivered=True)
            if entries:
                self._own_cursor[me] = entries[-1][0]
                return self._live(group, entries)
            self._own_cursor[me] = None
        start = self._claim_cursor.get(group, "0-0")
        next_start, claimed, *_ = client.xautoclaim(self.key, group, consumer, self.claim_idle_ms, start, count=count)
        self._claim_cursor[group] = next_start.decode() if isinstance(next_start, bytes) else str(next_start)
        entries = [(_id(entry_id), fields) for entry_id, fields in claimed if entry_id is not None]
        if entries:
            return self._live(group, [(entry_id, fields, True) for entry_id, fields in entries])
        reply = client.xreadgroup(group, consumer, {self.key: ">"}, count=count, block=block_ms or None)
        return self._live(group, _entries(reply, redelivered=False))

    def _live(self, group: str, entries: Sequence[tuple[str, dict | None, bool]]) -> list[DirtyEntry]:
        live, gone = [], []
        for entry_id, fields, redelivered in entries:
            if not fields:  # trimmed away (MAXLEN) while pending: nothing left to evaluate
                gone.append(entry_id)
                continue
            users = unpack(fields[b"users"])
            live.append(DirtyEntry(entry_id, int(fields[b"block"]), users, redelivered))
        if gone:
            self.ack(group, gone)
        return live

    def ack(self, group: str, ids: Sequence[str]) -> int:
        """Acknowledge entries once their users are evaluated; returns how many were pending."""
        if not ids:
            return 0
        return int(self.cache.client.xack(self.key, group, *ids))

    def pending_count(self, group: str) -> int:
        try:
            return int(self.cache.client.xpending(self.key, group)["pending"])
        except redis.ResponseError:
            return 0  # no such group yet


def _id(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries(reply, redelivered: bool) -> list[tuple[str, dict | None, bool]]:
    out: list[tuple[str, dict | None, bool]] = []
    streams = reply.items() if isinstance(reply, dict) else reply or []  # RESP3 replies are maps
    for _stream, items in streams:
        for entry_id, fields in items:
            out.append((_id(entry_id), fields, redelivered))
    return out
