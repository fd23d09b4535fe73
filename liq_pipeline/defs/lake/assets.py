"""The lake's datasets as Dagster assets, one partition per finished block range (built by liq_pipeline.lake).

Each asset builds its whole frame in memory, then writes it atomically: a failing build leaves no file and keeps
the previous one. Metadata on every materialization: rows, users, blocks, duration.
"""

# No `from __future__ import annotations` here: Dagster reads these signatures' annotations at load time.

import time

import dagster as dg
import polars as pl

from ...cache import open_market_cache
from ...cache.kpis import check_kpi_name
from ...chain.discovery import ReaderError
from ...chain.rpc import NodeUnavailable, RpcError
from ...lake.backfill import STATE_DATASETS
from ...lake.datasets.borrower_snapshots import build_borrower_snapshots, known_users_before
from ...lake.datasets.liquidation_outcomes import build_liquidation_outcomes, miss_rate
from ...lake.datasets.pool_events import build_pool_events
from ...lake.datasets.price_histories import ORACLE, SCHEMA, build_price_histories
from ...lake.datasets.reserve_indices import build_reserve_indices
from ...lake.datasets.watcher_blocks import build_watcher_blocks
from ...lake.errors import LakeError
from ...lake.partitions import BlockRange
from ..market import KEY_PREFIX, asset_key
from ..partitions import block_range_of, block_ranges, first_state_block, planned_in_flight
from ..resources import ChainResource, LakeResource, RedisResource

GROUP = "lake"


def _metadata(frame: pl.DataFrame, start: int, end: int, began: float, path) -> dict:
    users = frame["user"].drop_nulls().n_unique() if "user" in frame.columns else 0
    return {
        "rows": frame.height,
        "users": users,
        "blocks": end - start + 1,
        "first_block": start,
        "last_block": end,
        "duration_s": round(time.perf_counter() - began, 3),
        "path": dg.MetadataValue.path(str(path)),
    }


class _NoState(Exception):
    """The range ends before the first block with state: a dataset that reads state has nothing to read."""

    def __init__(self, state_from: int):
        self.state_from = state_from


def _build(
    context, chain: ChainResource, lake_resource: LakeResource, dataset: str, build, *, reads_state: bool = False
) -> tuple[pl.DataFrame, dict]:
    """Build the partition's frame, write it atomically; the frame and the materialization metadata.

    `build(rpc, market, rules, start, end, lake, state_from)`; `state_from` is the first block whose state the node
    serves (partitions.first_state_block). The market is read at the range's end, or at `state_from` for a range
    that ends before it (its logs are still there: pool_events builds). With `reads_state`, such a range raises
    _NoState. Every failure is a dg.Failure of one line: `range KEY: DATASET: what went wrong`."""
    began = time.perf_counter()
    start, end = block_range_of(context)
    key = context.partition_key
    lake = lake_resource.lake()
    with chain.client() as rpc:
        head = rpc.quantity("eth_blockNumber")
        if end > head:
            raise dg.Failure(f"range {key}: {dataset}: the range ends at {end}, the chain is at {head}")
        try:
            state_from = first_state_block(rpc, chain.settings(), head)
        except (RpcError, NodeUnavailable) as error:
            raise dg.Failure(f"range {key}: {dataset}: finding the first block with state: {error}") from None
        if reads_state and end < state_from:
            raise _NoState(state_from)
        at = max(end, state_from)
        try:
            market, rules = chain.market(rpc, at)
        except (ReaderError, RpcError, NodeUnavailable) as error:
            raise dg.Failure(f"range {key}: {dataset}: reading the market at block {at}: {error}") from None
        try:
            frame = build(rpc, market, rules, start, end, lake, state_from)
        except (ReaderError, LakeError, ValueError, RpcError, NodeUnavailable) as error:
            raise dg.Failure(f"range {key}: {_reason(dataset, error)}") from None
    block_range = BlockRange(start, end)
    lake.write(dataset, block_range, frame)
    metadata = _metadata(frame, start, end, began, lake.path(dataset, block_range))
    metadata["first_block_with_state"] = state_from
    return frame, metadata


def _reason(dataset: str, error: Exception) -> str:
    """`DATASET: message` on one line (lake errors already start with their dataset)."""
    text = " ".join(str(error).split())
    return text if text.startswith(f"{dataset}: ") else f"{dataset}: {text}"


def _state_asset(description: str):
    """The asset decorator of a dataset read from the node's state at the range's end: no output for a range that
    ends before the node's first block with state (`_from_state`)."""
    return dg.asset(
        key_prefix=KEY_PREFIX,
        partitions_def=block_ranges,
        group_name=GROUP,
        kinds={"parquet"},
        deps=[pool_events],
        description=f"{description} Not built for a range that ends before the node's first block with state.",
        output_required=False,
    )


def _from_state(context, chain: ChainResource, lake: LakeResource, dataset: str, build):
    """_build that reads state: its MaterializeResult, or none (logged) for a range before the node's state."""
    try:
        _frame, metadata = _build(context, chain, lake, dataset, build, reads_state=True)
    except _NoState as no_state:
        start, end = block_range_of(context)
        context.log.info(
            f"range {context.partition_key}: {dataset} not built: blocks {start}-{end} have no state on this node "
            f"(first block with state: {no_state.state_from})"
        )
        return
    yield dg.MaterializeResult(metadata=metadata)


def datasets_of(end: int, state_from: int) -> list[str]:
    """The chain datasets a range ending at `end` holds when the node's first block with state is `state_from`:
    all of them, or those that read no state at the range's end (logs; price_histories, empty there)."""
    names = [a.key.to_user_string() for a in CHAIN_ASSETS]
    return names if end >= state_from else [n for n in names if n not in STATE_DATASETS]


def _record_check(chain: ChainResource, asset: str, check: str, passed: bool, **kpis) -> None:
    """A check's outcome (and related KPIs) into Redis for the exporter; a Redis outage must not fail the run."""
    try:
        with chain.client() as rpc:
            market, _rules = chain.market(rpc, rpc.quantity("eth_blockNumber"))
        cache = open_market_cache(chain.settings(), market.chain_id, market.pool)
        cache.set_kpis({check_kpi_name(asset, check): int(passed), **kpis})
    except Exception:  # the check result itself is recorded by Dagster either way
        return


def _events_of(store, start: int, end: int):
    """This range's pool_events when already in the lake (saves an eth_getLogs pass), else None."""
    block_range = BlockRange(start, end)
    return store.read("pool_events", block_range) if store.exists("pool_events", block_range) else None


@dg.asset(
    key_prefix=KEY_PREFIX,
    partitions_def=block_ranges,
    group_name=GROUP,
    kinds={"parquet"},
    description="Decoded Pool, token, oracle and price-feed events of the range.",
)
def pool_events(context: dg.AssetExecutionContext, chain: ChainResource, lake: LakeResource) -> dg.MaterializeResult:
    _frame, metadata = _build(
        context, chain, lake, "pool_events", lambda rpc, m, r, s, e, _lake, _state: build_pool_events(rpc, m, r, s, e)
    )
    return dg.MaterializeResult(metadata=metadata)


@_state_asset(
    "Per reserve: indices, rates, timestamps and configuration at the range's end, and every ReserveDataUpdated in "
    "the range."
)
def reserve_indices(context: dg.AssetExecutionContext, chain: ChainResource, lake: LakeResource):
    def build(rpc, market, rules, start, end, store, _state_from):
        return build_reserve_indices(rpc, market, rules, start, end, events=_events_of(store, start, end))

    yield from _from_state(context, chain, lake, "reserve_indices", build)


@dg.asset(
    key_prefix=KEY_PREFIX,
    partitions_def=block_ranges,
    group_name=GROUP,
    kinds={"parquet"},
    description="AaveOracle price of every asset at every block of the range, and the price-feed updates.",
    check_specs=[
        dg.AssetCheckSpec(
            "block_continuity",
            asset=asset_key("price_histories"),
            blocking=True,
            description="Every block of the range present: count = max - min + 1",
        )
    ],
)
def price_histories(
    context: dg.AssetExecutionContext, chain: ChainResource, lake: LakeResource
) -> dg.MaterializeResult:
    # Per-block state reads need a node that still holds the state of those blocks: from the first block with
    # state on (STATE_HISTORY_FROM_BLOCK, or later where the node says so: partitions.first_state_block).
    def build(rpc, market, rules, start, end, _lake, state_from):
        first = max(start, state_from)
        if first > end:  # the whole range predates the node's state history
            return pl.DataFrame(schema=SCHEMA)
        return build_price_histories(rpc, market, rules, first, end)

    frame, metadata = _build(context, chain, lake, "price_histories", build)
    start, end = block_range_of(context)
    state_from = metadata["first_block_with_state"]
    first = max(start, state_from)
    if first > end:
        check = dg.AssetCheckResult(
            check_name="block_continuity",
            passed=True,
            metadata={"note": f"range predates the node's first block with state ({state_from}): no per-block state"},
        )
    else:
        check = block_continuity(frame.filter(pl.col("source") == ORACLE)["block_number"], first, end)
    metadata["state_history_from"] = first
    _record_check(chain, "price_histories", "block_continuity", check.passed)
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


def block_continuity(blocks: pl.Series, start: int, end: int) -> dg.AssetCheckResult:
    """No missing block: distinct blocks = max - min + 1, spanning exactly [start, end]."""
    distinct = blocks.unique()
    low, high = (int(distinct.min()), int(distinct.max())) if distinct.len() else (None, None)
    passed = distinct.len() == end - start + 1 and low == start and high == end
    missing = sorted(set(range(start, end + 1)) - set(distinct.to_list()))[:20]
    return dg.AssetCheckResult(
        check_name="block_continuity",
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "blocks": distinct.len(),
            "expected": end - start + 1,
            "min": low,
            "max": high,
            "missing": ", ".join(map(str, missing)),
        },
    )


# Ranges run side by side (a UI backfill: two at a time under the production queue's `dagster/backfill` limit; the
# schedule's runs; `liq backfill --parallel` orders its own), and a range's snapshot reads the pool_events of every
# earlier range. Dagster cannot make a dynamic partition wait for the earlier ones: offset mappings and
# self-dependencies are for time windows only, a custom PartitionMapping never reaches the daemon, and
# AllPartitionMapping makes a UI backfill target the snapshots of every range in the instance (docs/deployment.md,
# "Backfills from the UI"). So the step waits, as a Dagster retry, while the missing earlier ranges are being
# materialized by runs in flight; a range nothing is building fails at once, as before.
WAIT_SECONDS = 2
CLI_BACKFILL_TAG = "liq/backfill"  # the runs of `liq backfill`, which orders its ranges itself
WAIT_RETRIES = 450  # 15 minutes: longer than an earlier range's run takes


def _wait_for_earlier_events(context: dg.AssetExecutionContext, lake: LakeResource, first_block: int) -> None:
    """Retry the step (dg.RetryRequested) while the pool_events of an earlier range are missing from the lake and
    planned by a run in flight; return when none is missing, or when one is that no run is building (the build then
    fails with the lake's message)."""
    start, _end = block_range_of(context)
    if start <= first_block or context.retry_number >= WAIT_RETRIES or CLI_BACKFILL_TAG in context.run.tags:
        return  # (`liq backfill` starts a range once the earlier ones have their pool_events or have ended)
    missing = [r.key for r in lake.lake().missing("pool_events", first_block, start - 1)]
    if not missing or not all(planned_in_flight(context.instance, pool_events.key, key) for key in missing):
        return
    if context.retry_number == 0:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        context.log.info(
            f"range {context.partition_key}: waiting for the pool_events of {shown}, being materialized by runs "
            "in flight (a snapshot reads the pool_events of every earlier range)"
        )
    raise dg.RetryRequested(max_retries=WAIT_RETRIES, seconds_to_wait=WAIT_SECONDS)


@_state_asset(
    "Per user per reserve at the range's last block: scaled balances, collateral flag, e-mode, for every borrower "
    "known up to the range's end (from the pool_events of every earlier range).",
)
def borrower_snapshots(context: dg.AssetExecutionContext, chain: ChainResource, lake: LakeResource):
    first_block = chain.settings().start_block
    _wait_for_earlier_events(context, lake, first_block)

    def build(rpc, market, rules, start, end, store, _state_from):
        known = known_users_before(store, start, first_block)
        events = _events_of(store, start, end)
        return build_borrower_snapshots(rpc, market, rules, start, end, known_users=known, events=events)

    yield from _from_state(context, chain, lake, "borrower_snapshots", build)


@dg.asset(
    key_prefix=KEY_PREFIX,
    partitions_def=block_ranges,
    group_name=GROUP,
    kinds={"parquet"},
    deps=[pool_events, asset_key("liquidation_candidates")],
    description="Each on-chain LiquidationCall joined with what the platform predicted before it.",
    check_specs=[
        dg.AssetCheckSpec(
            "miss_rate",
            asset=asset_key("liquidation_outcomes"),
            description="Share of liquidations not flagged >= 1 block before, vs KPI_MISS_RATE_MAX",
        )
    ],
)
def liquidation_outcomes(
    context: dg.AssetExecutionContext, chain: ChainResource, lake: LakeResource
) -> dg.MaterializeResult:
    settings = chain.settings()
    lookback = settings.lake_range_blocks

    def build(rpc, market, rules, start, end, store, _state_from):
        candidates = store.scan("liquidation_candidates", max(0, start - lookback), end)
        return build_liquidation_outcomes(
            rpc,
            market,
            rules,
            start,
            end,
            candidates=candidates,
            events=_events_of(store, start, end),
            lookback_blocks=lookback,
        )

    outcomes, metadata = _build(context, chain, lake, "liquidation_outcomes", build)
    rate = miss_rate(outcomes)
    passed = rate is None or rate <= settings.kpi_miss_rate_max
    check = dg.AssetCheckResult(
        check_name="miss_rate",
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "miss_rate": -1.0 if rate is None else rate,
            "liquidations": outcomes.height,
            "limit": settings.kpi_miss_rate_max,
        },
    )
    metadata["miss_rate"] = -1.0 if rate is None else rate
    _record_check(
        chain, "liquidation_outcomes", "miss_rate", passed, **({"miss_rate": rate} if rate is not None else {})
    )
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


CHAIN_ASSETS = [pool_events, reserve_indices, price_histories, borrower_snapshots]


@dg.asset(
    key_prefix=KEY_PREFIX,
    partitions_def=block_ranges,
    group_name="predictive",
    kinds={"parquet", "redis"},
    description="The watcher's per-block records (Redis Stream `blocks`) of the range: latency, users, candidates.",
    check_specs=[
        dg.AssetCheckSpec(
            "watcher_latency_p99",
            asset=asset_key("watcher_blocks"),
            description="p99 of block seen -> candidates written within KPI_WATCHER_P99_MS, no block skipped",
        )
    ],
)
def watcher_blocks(
    context: dg.AssetExecutionContext, chain: ChainResource, lake: LakeResource, redis: RedisResource
) -> dg.MaterializeResult:
    began = time.perf_counter()
    settings = chain.settings()
    start, end = block_range_of(context)
    with chain.client() as rpc:
        market, _rules = chain.market(rpc, rpc.quantity("eth_blockNumber"))
    cache = redis.market_cache(market.chain_id, market.pool)
    if not cache.reachable:
        raise dg.Failure("Redis is unreachable: the watcher's records live there")
    raw = cache.cache.client.xrange(cache.cache.keys.key("blocks"))
    entries = [{k.decode(): v.decode() for k, v in fields.items()} for _id, fields in raw]
    frame = build_watcher_blocks(entries, start, end)
    store = lake.lake()
    block_range = BlockRange(start, end)
    store.write("watcher_blocks", block_range, frame)
    metadata = _metadata(frame, start, end, began, store.path("watcher_blocks", block_range))
    latencies = frame["latency_ms"]
    p99 = float(latencies.quantile(0.99)) if frame.height else 0.0
    covered = frame.height == 0 or frame.height == int(frame["block"].max()) - int(frame["block"].min()) + 1
    check = dg.AssetCheckResult(
        check_name="watcher_latency_p99",
        passed=covered and p99 <= settings.kpi_watcher_p99_ms,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "p50_ms": float(latencies.median()) if frame.height else 0.0,
            "p99_ms": p99,
            "limit_ms": settings.kpi_watcher_p99_ms,
            "blocks": frame.height,
            "contiguous": covered,
        },
    )
    return dg.MaterializeResult(metadata={**metadata, "p99_ms": p99}, check_results=[check])


ALL_LAKE_ASSETS = [*CHAIN_ASSETS, liquidation_outcomes, watcher_blocks]

lake_ranges_job = dg.define_asset_job(
    "lake_ranges",
    selection=[a.key for a in ALL_LAKE_ASSETS],
    description="Materialize the lake's datasets of one finished block range (scheduled backfills, manual).",
)
