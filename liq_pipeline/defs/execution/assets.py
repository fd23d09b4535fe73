"""The executor's records as a Dagster asset: `liquidation_executions`, one partition per block range (by the block
each attempt was decided at), from the markets' Redis Streams of attempts (execution/records.py writes them).

Checks, run in the asset's step:
- `idempotency` (blocking, ERROR): no opportunity (market, user, debt, collateral) attempted twice within
  EXECUTION_ATTEMPT_TTL_SEC (the idempotency claim's window); attempts that sent nothing (`skipped`) do not count.
- `profit` (WARN): every included transaction's realized profit within `profit_tolerance` (1 %) of its expected.
- `reverts` (WARN): reverted / sent transactions at most `max_revert_share` (2 %, the issue's target).
Each check's outcome also goes to the market's KPI hash (`check_liquidation_executions_<check>`) for the exporter.
"""

# No `from __future__ import annotations` here: Dagster reads these signatures' annotations at load time.

import time

import dagster as dg
import polars as pl
import redis

from ...cache import client_for_settings, open_market_cache
from ...cache.kpis import check_kpi_name
from ...config import load_settings
from ...lake.datasets.liquidation_executions import (
    NAME,
    build_liquidation_executions,
    duplicate_attempts,
    markets_with_records,
    profit_deviations,
    read_records,
    revert_share,
)
from ...lake.partitions import BlockRange
from ..market import KEY_PREFIX, asset_key
from ..partitions import block_range_of, block_ranges
from ..resources import LakeResource

GROUP = "execution"
CHECK_IDEMPOTENCY = "idempotency"
CHECK_PROFIT = "profit"
CHECK_REVERTS = "reverts"
_LISTED = 20  # offending attempts listed in a check's metadata


class ExecutionChecksConfig(dg.Config):
    """Thresholds of the checks (run config; the defaults are issue #13's targets)."""

    max_revert_share: float = 0.02  # reverted / sent transactions
    profit_tolerance: float = 0.01  # |realized - expected| / expected, included transactions
    window_sec: float | None = None  # one attempt per opportunity per this long; None: EXECUTION_ATTEMPT_TTL_SEC


def _read_entries(settings) -> tuple[list[dict[str, str]], list[str]]:
    """Every attempt record of every market in Redis (CHAIN_ID, when set, keeps that chain only)."""
    try:
        client = client_for_settings(settings, timeout=10.0)
        markets = markets_with_records(client, settings.chain_id)
        entries = [entry for keys in markets for entry in read_records(client, keys)]
    except (redis.RedisError, OSError) as error:
        raise dg.Failure(
            f"Redis is unreachable: the executor's records live there ({type(error).__name__}: {error})"
        ) from None
    return entries, [f"{keys.chain_id}:{keys.pool}" for keys in markets]


def _listing(frame: pl.DataFrame) -> str:
    return "\n".join(str(row) for row in frame.head(_LISTED).iter_rows(named=True))


def idempotency_check(frame: pl.DataFrame, window_sec: float) -> dg.AssetCheckResult:
    duplicates = duplicate_attempts(frame, window_sec)
    return dg.AssetCheckResult(
        check_name=CHECK_IDEMPOTENCY,
        passed=duplicates.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "duplicates": duplicates.height,
            "attempts": frame.height,
            "window_sec": window_sec,
            "listed": _listing(duplicates),
        },
    )


def profit_check(frame: pl.DataFrame, tolerance: float) -> dg.AssetCheckResult:
    off = profit_deviations(frame, tolerance)
    included = frame.filter(pl.col("outcome") == "included").height
    return dg.AssetCheckResult(
        check_name=CHECK_PROFIT,
        passed=off.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "included": included,
            "off_target": off.height,
            "tolerance": tolerance,
            "max_deviation": float(off["deviation"].max() or 0.0) if off.height else 0.0,
            "listed": _listing(off),
        },
    )


def reverts_check(frame: pl.DataFrame, max_share: float) -> dg.AssetCheckResult:
    share, reverted, sent = revert_share(frame)
    return dg.AssetCheckResult(
        check_name=CHECK_REVERTS,
        passed=share is None or share <= max_share,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "revert_share": -1.0 if share is None else share,
            "reverted": reverted,
            "sent": sent,
            "limit": max_share,
        },
    )


def _record_checks(settings, markets: list[str], checks: list[dg.AssetCheckResult]) -> None:
    """The checks' outcomes into each market's KPI hash for the exporter; a Redis outage must not fail the run."""
    values = {check_kpi_name(NAME, c.check_name): int(c.passed) for c in checks}
    for market in markets:
        chain_id, _, pool = market.partition(":")
        try:
            open_market_cache(settings, int(chain_id), pool).set_kpis(values)
        except Exception:  # the check results themselves are recorded by Dagster either way
            continue


@dg.asset(
    key_prefix=KEY_PREFIX,
    partitions_def=block_ranges,
    group_name=GROUP,
    kinds={"parquet", "redis"},
    description="Every executor attempt decided in the range (Redis Streams `execution:attempts` of every market): "
    "block seen, user, pair, debtToCover, expected profit, fees, tx hash, outcome, realized profit, competitor.",
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_IDEMPOTENCY,
            asset=asset_key(NAME),
            blocking=True,
            description="No opportunity (market, user, debt, collateral) attempted twice within "
            "EXECUTION_ATTEMPT_TTL_SEC",
        ),
        dg.AssetCheckSpec(
            CHECK_PROFIT,
            asset=asset_key(NAME),
            description="Included transactions: realized profit within 1 % of expected",
        ),
        dg.AssetCheckSpec(CHECK_REVERTS, asset=asset_key(NAME), description="Reverted / sent transactions within 2 %"),
    ],
)
def liquidation_executions(
    context: dg.AssetExecutionContext, config: ExecutionChecksConfig, lake: LakeResource
) -> dg.MaterializeResult:
    began = time.perf_counter()
    settings = load_settings()
    start, end = block_range_of(context)
    entries, markets = _read_entries(settings)
    frame = build_liquidation_executions(entries, start, end)
    store = lake.lake()
    block_range = BlockRange(start, end)
    path = store.write(NAME, block_range, frame)
    window = config.window_sec if config.window_sec is not None else float(settings.execution_attempt_ttl_sec)
    checks = [
        idempotency_check(frame, window),
        profit_check(frame, config.profit_tolerance),
        reverts_check(frame, config.max_revert_share),
    ]
    _record_checks(settings, markets, checks)
    outcomes = dict(frame.group_by("outcome").len().iter_rows()) if frame.height else {}
    metadata = {
        "rows": frame.height,
        "users": frame["user"].n_unique() if frame.height else 0,
        "blocks": end - start + 1,
        "first_block": start,
        "last_block": end,
        "markets": ", ".join(markets),
        "outcomes": ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items())),
        "duration_s": round(time.perf_counter() - began, 3),
        "path": dg.MetadataValue.path(str(path)),
    }
    return dg.MaterializeResult(metadata=metadata, check_results=checks)


execution_records_job = dg.define_asset_job(
    "execution_records",
    selection=[liquidation_executions.key],
    description="Move the executor's attempts of one block range from Redis to the lake, with their checks.",
)
