"""The Redis key layout: every key of one market (chain id + Pool address) under one Redis Cluster hash tag.

`liq:{<chain id>:<pool, lower case>}:<name>`: the part in braces is the hash tag, so all of a market's keys land in
one cluster slot. That is what lets a MULTI/EXEC or a RENAME touch several of them at once on Redis Cluster too, and
what shards markets across a cluster. docs/redis-setup.md describes every key (type, writer, reader).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "liq"
_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")

# The candidates ZSET's suffix is the name its existing tooling and dashboards read.
CANDIDATES_ZSET = "predictive:eta:zset"


@dataclass(frozen=True)
class MarketKeys:
    """Key names of one market. Build with `MarketKeys.for_market(chain_id, pool)`."""

    chain_id: int
    pool: str  # lower-case 0x address

    @classmethod
    def for_market(cls, chain_id: int, pool: str) -> MarketKeys:
        if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
            raise ValueError(f"chain_id must be a positive integer, got {chain_id!r}")
        if not _ADDRESS_RE.match(pool):
            raise ValueError(f"pool must be a 0x-prefixed 20-byte hex address, got {pool!r}")
        # Lower case: the same market must map to the same keys whatever checksum casing the caller used.
        return cls(chain_id, pool.lower())

    @property
    def tag(self) -> str:
        return f"{{{self.chain_id}:{self.pool}}}"

    @property
    def namespace(self) -> str:
        """`liq:{8453:0x...}`: every key of this market starts with this plus ':'."""
        return f"{PREFIX}:{self.tag}"

    def key(self, name: str) -> str:
        return f"{self.namespace}:{name}"

    @property
    def pattern(self) -> str:
        """SCAN MATCH pattern of every key of this market (braces are literal in Redis glob patterns)."""
        return f"{self.namespace}:*"

    # --- borrowers -----------------------------------------------------------------------------------------
    @property
    def borrowers_index(self) -> str:
        """ZSET member=user, score=current HF (BORROWERS_INDEX_MODE=redis)."""
        return self.key("borrowers:index")

    @property
    def borrowers_meta(self) -> str:
        """HASH block, count, updated_at of the last full index replacement."""
        return self.key("borrowers:meta")

    @property
    def positions(self) -> str:
        """HASH ipc (Arrow IPC stream of the wide positions frame), block, rows, updated_at, codec."""
        return self.key("positions:latest")

    # --- market state -------------------------------------------------------------------------------------
    @property
    def reserves(self) -> str:
        """HASH value (msgpack {block, updated_at, reserves}), block."""
        return self.key("reserves:latest")

    @property
    def price_windows(self) -> str:
        """HASH asset -> msgpack {block, updated_at, timestamps, prices}."""
        return self.key("prices:window")

    # --- work queue ------------------------------------------------------------------------------------------
    @property
    def dirty_stream(self) -> str:
        """STREAM of users whose positions changed, consumed by a consumer group."""
        return self.key("dirty:stream")

    # --- candidates -------------------------------------------------------------------------------------------
    @property
    def candidates_zset(self) -> str:
        """ZSET member=`user:scenario`, score=ETA seconds."""
        return self.key(CANDIDATES_ZSET)

    @property
    def candidates_details(self) -> str:
        """HASH member -> msgpack row (every candidate column)."""
        return self.key("predictive:candidates")

    @property
    def candidates_meta(self) -> str:
        """HASH block, count, updated_at of the candidate set now live."""
        return self.key("predictive:meta")

    # --- outputs ------------------------------------------------------------------------------------------------
    @property
    def kpis(self) -> str:
        """HASH name -> msgpack [value, updated_at], read by the metrics exporter."""
        return self.key("kpi")

    @property
    def alerts(self) -> str:
        """STREAM of alerts (field `data`: msgpack {kind, severity, message, at, ...})."""
        return self.key("alerts")

    def staging(self, name: str, token: str) -> str:
        """A temporary key (same slot) that a replacement is built in before it is renamed over the live key."""
        return self.key(f"staging:{name}:{token}")


def candidate_member(user: str, scenario: str) -> str:
    return f"{user}:{scenario}"


def split_member(member: str) -> tuple[str, str]:
    user, _, scenario = member.rpartition(":")
    return user, scenario
