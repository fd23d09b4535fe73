"""`liq status`: where the platform stands, in one object (for people and for scripts).

Each part is read on its own and reported as unavailable when it cannot be read: a status command that crashes
when Redis is down would be useless exactly when it is needed.
"""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..lake.open import lake_root, open_lake


def platform_status(settings: Settings) -> dict[str, Any]:
    status: dict[str, Any] = {"chain": None, "redis": None, "lake": None}
    market = None
    if settings.rpc_url is not None and settings.aave_addresses_provider is not None:
        from ..chain.discovery import discover_market
        from ..chain.rpc import NodeUnavailable, RpcClient
        from ..risk.versions import rules_for

        try:
            with RpcClient(settings.rpc_url.get_secret_value(), retries=1) as rpc:
                head = int(rpc.call("eth_blockNumber"), 16)
                market = discover_market(
                    rpc,
                    settings.aave_addresses_provider,
                    head,
                    rules_for(settings.aave_protocol_version),
                    False,
                    multicall=None,  # no position reads here: no need to look for the contract
                )
                status["chain"] = {
                    "reachable": True,
                    "latest_block": head,
                    "chain_id": market.chain_id,
                    "pool": market.pool,
                    "reserves": len(market.reserves),
                }
        except (NodeUnavailable, RuntimeError) as error:
            status["chain"] = {"reachable": False, "error": str(error)}
    else:
        status["chain"] = {"reachable": False, "error": "RPC_URL or AAVE_ADDRESSES_PROVIDER not set"}

    if market is not None:
        from ..cache import open_market_cache

        cache = open_market_cache(settings, market.chain_id, market.pool)
        try:
            candidates = cache.read_candidates()
            reachable = cache.reachable and candidates is not None
        except Exception:  # an unreachable or broken server: say so
            reachable, candidates = False, None
        redis: dict[str, Any] = {"reachable": reachable}
        if reachable:
            from ..cache.kpis import get_kpis

            kpis = {name: kpi.value for name, kpi in get_kpis(cache.cache).items() if name != "latency_ms_recent"}
            redis["candidates_per_scenario"] = (
                {row[0]: row[1] for row in candidates.group_by("scenario").len().iter_rows()}
                if candidates.height
                else {}
            )
            redis["kpis"] = kpis
            status["last_evaluated_block"] = kpis.get("last_evaluated_block")
            if status["chain"].get("latest_block") is not None and kpis.get("last_evaluated_block") is not None:
                status["blocks_behind"] = status["chain"]["latest_block"] - int(kpis["last_evaluated_block"])
        status["redis"] = redis

    if lake_root(settings).is_dir():
        lake = open_lake(settings)
        status["lake"] = {name: [r.key for r in lake.ranges(name)] for name in sorted(lake.specs)}
        status["partitions_materialized"] = {name: len(keys) for name, keys in status["lake"].items()}
    return status
