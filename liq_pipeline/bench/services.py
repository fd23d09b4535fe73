"""The services a benchmark starts for itself and stops when it ends, touching nothing else.

- `live_devnet` (`liq bench-watch`, `liq bench-lake`): an anvil started from the devnet state cache (deployed +
  seeded market, built on first use), with one client to drive the chain (mine, simulate) and one to read it as
  the pipeline does;
- `scratch_redis` (`liq bench-cache`, `liq bench-watch`): an embedded Redis in a temporary folder.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cache.server import EmbeddedRedis
from ..chain.rpc import NodeUnavailable, RpcClient
from ..devnet import anvil, state_cache
from ..devnet.market import Market
from ..devnet.protocols import DEFAULT_PROTOCOL
from ..devnet.rpc import Rpc
from .report import Stopwatch, scratch_dir


@dataclass
class LiveDevnet:
    entry: state_cache.CacheEntry
    built: bool  # the state cache entry was built by this run
    prepare_s: float  # finding or building the entry
    node: anvil.AnvilNode
    market: Market
    devnet: Rpc  # drives the chain: mining, the simulator
    rpc: RpcClient  # reads it, as the pipeline does

    def head(self) -> int:
        return int(self.rpc.call("eth_blockNumber"), 16)

    def borrowers(self) -> list[str]:
        return state_cache.read_borrowers(self.entry).users


@contextmanager
def live_devnet(
    data_dir: Path, borrowers: int, seed: int, *, prune_history: bool = False, protocol: str = DEFAULT_PROTOCOL
) -> Iterator[LiveDevnet]:
    """The cached chain of (borrowers, seed) on `protocol` under `data_dir`, running until the block ends."""
    with Stopwatch() as preparing:
        entry, built = state_cache.ensure(data_dir, borrowers, seed, protocol=protocol)
    node, market = state_cache.start_from(entry, prune_history=prune_history)
    devnet, rpc = Rpc(node.url), RpcClient(node.url)
    try:
        yield LiveDevnet(entry, built, preparing.seconds, node, market, devnet, rpc)
    finally:
        rpc.close()
        devnet.close()
        anvil.stop(node)


def step(watcher, tries: int = 5) -> int:
    """`watcher.step()` as its run loop does it: a block the node answered inconsistently (NodeUnavailable: seen
    on anvil right after a block is mined, some calls answered from the next state) is read again, a few times."""
    for attempt in range(tries):
        try:
            return watcher.step()
        except NodeUnavailable:
            if attempt == tries - 1:
                raise
            time.sleep(0.02 * (attempt + 1))
    return 0


@contextmanager
def scratch_redis(prefix: str, **options: Any) -> Iterator[str]:
    """The URL of an embedded Redis (EmbeddedRedis `options`) in a temporary folder, stopped and removed after."""
    with scratch_dir(prefix) as folder:
        server = EmbeddedRedis(folder / "redis", **options)
        try:
            yield server.ensure_running().url
        finally:
            server.stop()
