"""liquidation_candidates: one predictive evaluation per run, for the newest block the sensor saw.

The asset is partitioned by block range: each run rewrites the partition's Parquet file with every evaluation of
the range so far (idempotent, deduplicated by block, user and scenario). Its checks run in the same step:
- hf_agreement (blocking, ERROR): a sample of users against getUserAccountData at the block; any flip fails the run;
- latency_p95 (WARN): p95 of block seen -> candidates written over the last evaluations vs KPI_LATENCY_P95_MS.
"""

# No `from __future__ import annotations` here: Dagster reads these signatures' annotations at load time.

import time

import dagster as dg

from ...config import load_settings
from ...evaluation.run import evaluate_block
from ...lake.partitions import range_of
from ..market import KEY_PREFIX, asset_key, op_name
from ..partitions import BLOCK_RANGES, block_range_of, block_ranges
from ..resources import RESOURCES, ChainResource

ASSET = "liquidation_candidates"


class EvaluationConfig(dg.Config):
    """Set by the new-block sensor; a launch from the UI may leave them at their defaults."""

    block: int = -1  # -1: the newest block of the partition's range that exists
    from_block: int = -1  # -1: the block itself
    observed_at: float = 0.0  # when the block was first seen (0: now)


@dg.asset(
    name=ASSET,
    key_prefix=KEY_PREFIX,
    partitions_def=block_ranges,
    group_name="predictive",
    kinds={"polars", "redis", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            "hf_agreement",
            asset=asset_key(ASSET),
            blocking=True,
            description="Engine HF<1 decisions equal getUserAccountData for a sample (0 flips)",
        ),
        dg.AssetCheckSpec(
            "latency_p95",
            asset=asset_key(ASSET),
            description="p95 block seen -> candidates written within KPI_LATENCY_P95_MS",
        ),
    ],
    description="Predictive candidates per evaluated block: user, scenario, HF now / after shock / projected, "
    "ETA to HF < 1 + buffer, liquidation sizing. Also written to Redis predictive:eta:zset.",
)
def liquidation_candidates(
    context: dg.AssetExecutionContext, config: EvaluationConfig, chain: ChainResource
) -> dg.MaterializeResult:
    settings = chain.settings()
    start, end = block_range_of(context)
    block = config.block
    if block < 0:
        block = min(end, chain.head())
    if not start <= block <= end:
        raise dg.Failure(f"block {block} is not in partition {context.partition_key}")
    observed = config.observed_at or time.time()
    outcome = evaluate_block(settings, block, config.from_block if config.from_block >= 0 else block, observed)
    counts = outcome.result.candidates_per_scenario()
    check = outcome.hf_check
    latency_ok = outcome.latency_p95_ms <= settings.kpi_latency_p95_ms
    return dg.MaterializeResult(
        metadata={
            "block": block,
            "blocks": block - (config.from_block if config.from_block >= 0 else block) + 1,
            "users": outcome.record.users,
            "rows": outcome.result.candidates.height,
            **{f"candidates_{name}": n for name, n in sorted(counts.items())},
            "touched_users": outcome.touched_users,
            "bootstrapped": outcome.bootstrapped,
            "exact_redecided": outcome.result.exact_redecided,
            "latency_ms": round(outcome.record.latency_ms, 1),
            "redis": outcome.redis,
            "duration_s": round(sum(outcome.seconds.values()), 3),
            **{f"seconds_{k}": round(v, 3) for k, v in outcome.seconds.items()},
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="hf_agreement",
                passed=check.flips == 0,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "sampled": check.sampled,
                    "flips": check.flips,
                    "block": check.block,
                    "max_rel_err": check.max_rel_err,
                    "disagreeing": ", ".join(check.disagreeing[:20]),
                },
            ),
            dg.AssetCheckResult(
                check_name="latency_p95",
                passed=latency_ok,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "p95_ms": outcome.latency_p95_ms,
                    "limit_ms": settings.kpi_latency_p95_ms,
                    "last_ms": round(outcome.record.latency_ms, 1),
                },
            ),
        ],
    )


predictive_evaluation_job = dg.define_asset_job(
    "predictive_evaluation",
    selection=[asset_key(ASSET)],
    description="Refresh dirty users, evaluate every user in every scenario, write candidates (sensor-launched).",
)


def evaluate_in_process(
    instance: dg.DagsterInstance,
    block: int,
    from_block: int | None = None,
    observed_at: float = 0.0,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """One evaluation run of `block` in this process, recorded in `instance` (the demo and the tests drive the
    asset this way, without a daemon); the block's range partition is added first."""
    key = range_of(block, load_settings().lake_range_blocks).key
    instance.add_dynamic_partitions(BLOCK_RANGES, [key])
    config = {"block": block, "from_block": block if from_block is None else from_block, "observed_at": observed_at}
    return dg.materialize(
        [liquidation_candidates],
        partition_key=key,
        instance=instance,
        resources=RESOURCES,
        run_config=dg.RunConfig(ops={op_name(ASSET): {"config": config}}),
        raise_on_error=raise_on_error,
    )
