"""The new-block sensor: partitions for finished ranges, one evaluation run for the newest block (see ticks.py)."""

# No `from __future__ import annotations` here: Dagster reads these signatures' annotations at load time.

import time

import dagster as dg

from ..partitions import BLOCK_RANGES, block_ranges
from ..resources import ChainResource
from .assets import ASSET, predictive_evaluation_job

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dg.sensor(
    job=predictive_evaluation_job,
    minimum_interval_seconds=2,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Each tick: add finished block ranges as partitions, evaluate the newest block (coalescing).",
)
def new_block_sensor(context: dg.SensorEvaluationContext, chain: ChainResource) -> dg.SensorResult:
    from ...chain.rpc import NodeUnavailable
    from ...evaluation.ticks import plan_tick
    from ...lake.partitions import range_of

    settings = chain.settings()
    try:
        head = chain.head()
    except NodeUnavailable as error:
        return dg.SensorResult(skip_reason=f"node unavailable: {error}", cursor=context.cursor)
    seen_at = time.time()
    known = set(context.instance.get_dynamic_partitions(BLOCK_RANGES))
    in_flight = bool(
        context.instance.get_run_ids(
            filters=dg.RunsFilter(job_name=predictive_evaluation_job.name, statuses=IN_FLIGHT), limit=1
        )
    )
    plan = plan_tick(
        int(context.cursor) if context.cursor else None,
        head,
        known,
        in_flight,
        settings.lake_range_blocks,
        settings.confirmations,
        settings.start_block,
    )
    requests = []
    if plan.evaluate_block is not None:
        block = plan.evaluate_block
        requests.append(
            dg.RunRequest(
                run_key=plan.run_key,
                partition_key=range_of(block, settings.lake_range_blocks).key,
                run_config=dg.RunConfig(
                    ops={ASSET: {"config": {"block": block, "from_block": plan.from_block, "observed_at": seen_at}}}
                ),
                tags={"liq/block": str(block), "liq/from_block": str(plan.from_block)},
            )
        )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[block_ranges.build_add_request(plan.new_partitions)]
        if plan.new_partitions
        else [],
        cursor=str(plan.cursor),
        skip_reason=None if requests else (plan.skipped_reason or None),
    )
