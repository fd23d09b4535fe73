"""`liq status`: where the platform stands, for people (lines) and scripts (`--json`, and the exit code).

Each part is read on its own and reported as unavailable when it cannot be read: a status command that crashes
when Redis is down would be useless exactly when it is needed.
- chain: the node (reachable or not, its chain id and head), then the market of AAVE_ADDRESSES_PROVIDER (found or
  not: a reachable node with a wrong provider address is told apart from an unreachable node);
- redis: REDIS_URL's server or the embedded one (never started here), reachable or not; the market's candidates
  per scenario and KPIs when both are there;
- lake: the partitions materialized per dataset.
`healthy` is false, and the exit code 1, when the node or Redis cannot be reached, the market is not found, or the
last evaluation is more than BEHIND_BLOCKS blocks behind the chain; `problems` says which.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..cache import EmbeddedRedis, connect, open_market_cache, safe_url
from ..cache.kpis import get_kpis
from ..chain.discovery import ReaderError, discover_market
from ..chain.rpc import NodeUnavailable, RpcClient, RpcError
from ..config import Settings
from ..devnet.errors import DevnetError
from ..lake.errors import LakeError
from ..lake.open import lake_root, open_lake
from ..risk.versions import rules_for
from . import runtime
from .redaction import mask_url, redact

BEHIND_BLOCKS = 30  # a minute of Base blocks (the new-block sensor evaluates every block); `liq status -h` says 30


def chain_status(settings: Settings, problem: str | None = None) -> tuple[dict[str, Any], Any]:
    """The node and the market: (the report, the discovered market or None)."""
    if problem is not None or settings.rpc_url is None or settings.aave_addresses_provider is None:
        return {"reachable": False, "error": problem or "RPC_URL or AAVE_ADDRESSES_PROVIDER not set"}, None
    url = settings.rpc_url.get_secret_value()
    chain: dict[str, Any] = {"url": mask_url(url), "reachable": False}
    market = None
    try:
        with RpcClient(url, retries=1, timeout=10) as rpc:
            chain_id = rpc.quantity("eth_chainId")
            chain.update(reachable=True, chain_id=chain_id)
            mismatch = runtime.chain_id_problem(settings, chain_id, rpc.label)
            if mismatch is not None:
                chain["error"] = mismatch
                return chain, None
            head = rpc.quantity("eth_blockNumber")
            chain["latest_block"] = head
            provider = settings.aave_addresses_provider
            try:
                market = discover_market(
                    rpc,
                    provider,
                    head,
                    rules_for(settings.aave_protocol_version),
                    False,
                    multicall=None,  # no position reads here: no need to look for the contract
                )
            except (ReaderError, RpcError) as error:
                chain["market"] = {"found": False, "addresses_provider": provider, "error": redact(str(error))}
            else:
                chain["market"] = {
                    "found": True,
                    "addresses_provider": provider,
                    "pool": market.pool,
                    "reserves": len(market.reserves),
                }
    except NodeUnavailable as error:
        chain["error"] = redact(str(error))
    except RpcError as error:  # it answers, but not usefully
        chain.update(reachable=True, error=redact(f"the node answered an error: {error}"))
    return chain, market


def redis_status(settings: Settings) -> dict[str, Any]:
    """REDIS_URL's server, or the embedded one if it runs (a status command does not start it)."""
    if settings.redis_url is None:
        server = EmbeddedRedis(Path(settings.data_dir) / "redis")
        info = server.info()
        if info is None:
            return {
                "reachable": False,
                "embedded": True,
                "error": f"the embedded Redis of DATA_DIR={runtime.shown(settings.data_dir)} is not running "
                "(`liq redis start`, or `liq dev`)",
            }
        return {"reachable": True, "embedded": True, "url": safe_url(info.url)}
    url = settings.redis_url.get_secret_value()
    report: dict[str, Any] = {"reachable": False, "embedded": False, "url": mask_url(url)}
    client = connect(url, connect_timeout=1.0, timeout=2.0, retries=0)
    try:
        report["reachable"] = bool(client.ping())
    except redis.RedisError as error:
        report["error"] = redact(f"{type(error).__name__}: {error}")
    finally:
        client.close()
    return report


def platform_status(settings: Settings, chain_problem: str | None = None) -> dict[str, Any]:
    chain, market = chain_status(settings, chain_problem)
    status: dict[str, Any] = {"healthy": False, "problems": [], "chain": chain, "redis": redis_status(settings)}
    status["last_evaluated_block"] = None
    if market is not None and status["redis"]["reachable"]:
        cache = open_market_cache(settings, market.chain_id, market.pool)
        candidates = cache.read_candidates()
        if candidates is not None and cache.reachable:
            kpis = {name: kpi.value for name, kpi in get_kpis(cache.cache).items() if name != "latency_ms_recent"}
            status["redis"]["candidates_per_scenario"] = (
                {row[0]: row[1] for row in candidates.group_by("scenario").len().iter_rows()}
                if candidates.height
                else {}
            )
            status["redis"]["kpis"] = kpis
            if kpis.get("last_evaluated_block") is not None:
                status["last_evaluated_block"] = int(kpis["last_evaluated_block"])
                status["blocks_behind"] = chain["latest_block"] - status["last_evaluated_block"]
        else:
            status["redis"].update(reachable=False, error=redact(str(cache.last_error or "no answer")))
    status["lake"] = None
    try:  # on object storage (LAKE_URL) the store can be down: a problem of the status, not a stack trace
        if lake_root(settings).is_dir():
            lake = open_lake(settings)
            status["lake"] = {name: [r.key for r in lake.ranges(name)] for name in sorted(lake.specs)}
            status["partitions_materialized"] = {name: len(keys) for name, keys in status["lake"].items()}
    except LakeError as error:
        status["lake_error"] = redact(str(error))
    status["problems"] = problems(status)
    status["healthy"] = not status["problems"]
    return status


def problems(status: dict[str, Any]) -> list[str]:
    found = []
    chain, market = status["chain"], status["chain"].get("market")
    if not chain["reachable"]:
        found.append(f"chain: {chain.get('error', 'unreachable')}")
    elif "error" in chain:
        found.append(f"chain: {chain['error']}")
    elif market is not None and not market["found"]:
        found.append(f"market: {market['error']}")
    if not status["redis"]["reachable"]:
        found.append(f"redis: {status['redis'].get('error', 'unreachable')}")
    if "lake_error" in status:
        found.append(f"lake: {status['lake_error']}")
    if status.get("blocks_behind", 0) > BEHIND_BLOCKS:
        found.append(f"evaluation: {status['blocks_behind']} blocks behind the chain (more than {BEHIND_BLOCKS})")
    return found


def _lines(status: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    for _ in range(3):
        table.add_column()

    def row(part: str, state: str, detail: str) -> None:
        bad = state not in ("ok", "", "-")
        table.add_row(f"[bold]{part}[/]", f"[red]{state}[/]" if bad else state, escape(detail))

    chain, market = status["chain"], status["chain"].get("market")
    if not chain["reachable"]:
        row("chain", "unreachable", chain.get("error", ""))
    elif "error" in chain:
        row("chain", "error", chain["error"])
    else:
        row("chain", "ok", f"{chain['url']}  chain {chain['chain_id']}, block {chain['latest_block']}")
    if market is not None:
        found = market["found"]
        detail = f"pool {market['pool']}, {market['reserves']} reserves" if found else market["error"]
        row("market", "ok" if found else "not found", detail)
    part = status["redis"]
    where = part.get("url", "") + (" (embedded)" if part.get("embedded") else "")
    row("redis", "ok" if part["reachable"] else "unreachable", where if part["reachable"] else part.get("error", where))
    if status["last_evaluated_block"] is not None:
        behind = status["blocks_behind"]
        detail = f"block {status['last_evaluated_block']} ({behind} behind the chain)"
        row("evaluated", "ok" if behind <= BEHIND_BLOCKS else "behind", detail)
    else:
        row("evaluated", "-", "no evaluation recorded in Redis")
    counts = part.get("candidates_per_scenario")
    if counts is not None:
        row("candidates", "", " ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none")
    partitions = status.get("partitions_materialized")
    if "lake_error" in status:
        row("lake", "unreachable", status["lake_error"])
    else:
        row("lake", "", ", ".join(f"{k}: {v}" for k, v in partitions.items()) if partitions else "empty")
    return table


def main(as_json: bool) -> int:
    settings = runtime.settings()
    problem = None
    try:
        settings = runtime.node_settings(settings)
    except (runtime.CommandError, DevnetError) as error:  # reported as the chain's part
        problem = str(error)
    status = platform_status(settings, problem)
    if as_json:
        print(json.dumps(status, default=str))
    else:
        console = Console(highlight=False, soft_wrap=True)
        console.print(_lines(status))
        console.print("healthy" if status["healthy"] else f"[red]unhealthy:[/] {escape('; '.join(status['problems']))}")
    return 0 if status["healthy"] else runtime.EXIT_UNHEALTHY
