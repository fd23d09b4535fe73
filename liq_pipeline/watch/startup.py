"""Build a watcher from the settings: the latest state in Redis when there is one, else a bootstrap from events."""

from __future__ import annotations

import logging

from ..cache.client import hot_path_client, safe_url
from ..cache.context import CacheOptions, MarketCache
from ..cache.from_settings import redis_url_for
from ..cache.keys import MarketKeys
from ..cache.positions import PositionsSnapshot
from ..cache.resilience import ResilientCache
from ..chain.discovery import discover_market
from ..chain.rpc import RpcClient
from ..config import Settings
from ..evaluation.params import engine_params
from ..evaluation.rewind import rewind_redis
from ..evaluation.start import start_tracker
from ..risk.versions import rules_for
from .watcher import Watcher

log = logging.getLogger("liq_pipeline.watch")


def watcher_from_settings(settings: Settings, use_cache: bool = True) -> Watcher:
    if settings.rpc_url is None or settings.aave_addresses_provider is None:
        raise ValueError("RPC_URL and AAVE_ADDRESSES_PROVIDER must be set for `liq watch`")
    rules = rules_for(settings.aave_protocol_version)
    rpc = settings.node_client()
    head = rpc.quantity("eth_blockNumber")
    market = discover_market(rpc, settings.aave_addresses_provider, head, rules, multicall=settings.multicall_address)
    cache = hot_path_cache(settings, market.chain_id, market.pool) if use_cache else None
    snapshot = cache.get_positions() if cache is not None else None
    chain = _chain_of(rpc, snapshot, head) if snapshot is not None else "same"
    if chain == "other":  # evidence: the snapshot's block has another hash on this chain (a restarted devnet)
        dropped = rewind_redis(cache.cache, -1)
        log.warning(
            "Redis holds positions of another chain (block %d has another hash now): starting from the chain; "
            "%d evaluation key(s) deleted",
            snapshot.block,
            len(dropped),
        )
        snapshot = None
    elif chain == "unknown":  # the node does not serve the snapshot's block (yet): do not resume, delete nothing
        log.warning(
            "Redis positions at block %d are past what the node serves (head %d): starting from the chain",
            snapshot.block,
            head,
        )
        snapshot = None
    if snapshot is not None:
        log.info("starting from Redis: %d users at block %d (head %d)", snapshot.frame.height, snapshot.block, head)
    else:
        log.info("no state in Redis: reading borrowers from events since block %d", settings.start_block)
    windows = cache.get_price_windows() if snapshot is not None else None
    tracker = start_tracker(rpc, settings, market, rules, head, snapshot, windows)
    tracker.max_users_per_tick = settings.predictive_max_users_per_tick
    return Watcher(
        rpc,
        tracker,
        engine_params(settings),
        cache,
        head_stall_blocks=settings.watch_head_stall_blocks,
        speculate_before=settings.watch_speculate_before_ms / 1000.0,
    )


def hot_path_cache(settings: Settings, chain_id: int, pool: str) -> ResilientCache:
    """The watcher's cache: open_market_cache's, with REDIS_HOT_PATH_TIMEOUT_MS on its client (connect and every
    answer; a timeout is not retried) and its outage probes in a thread of their own, so a hung Redis costs a block
    one timeout per outage and nothing after (cache/resilience.py)."""
    url = redis_url_for(settings.redis_url, settings.data_dir)
    timeout = settings.redis_hot_path_timeout_ms / 1000.0
    log.info("Redis: %s%s, %.0f ms timeout", safe_url(url), "" if settings.redis_url else " (embedded)", timeout * 1e3)
    cache = MarketCache(
        hot_path_client(url, timeout), MarketKeys.for_market(chain_id, pool), CacheOptions.from_settings(settings)
    )
    # probes as short as the timeout (a probe that answers slower would only fail the catch-up that follows it),
    # every 0.25 s: they run in their own thread, so the catch-up follows the outage by a block at most
    return ResilientCache(cache, retry_interval=0.25, probe_timeout=max(timeout, 0.05), probe_in_background=True)


def _chain_of(rpc: RpcClient, snapshot: PositionsSnapshot, head: int) -> str:
    """ "same", "other" (the snapshot's block has another hash on the node: another chain) or "unknown" (the node
    does not serve that block: a head below it, a null answer). A snapshot without a hash is trusted when its
    block exists."""
    if snapshot.block > head:
        return "unknown"
    if snapshot.block_hash is None:
        return "same"
    header = rpc.call("eth_getBlockByNumber", hex(snapshot.block), False)
    if header is None:
        return "unknown"
    return "same" if header["hash"] == snapshot.block_hash else "other"
