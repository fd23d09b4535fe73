"""The new-block sensor: partitions for finished ranges, one evaluation run for the newest block (see ticks.py).

When the chain no longer holds the cursor's block (a restarted devnet, a reorg), the tick first has the lake and
Redis forget the old chain's blocks after the last block both chains hold (evaluation/rewind.py); if that fails, the
tick keeps its cursor and the next one tries again.
"""

# No `from __future__ import annotations` here: Dagster reads these signatures' annotations at load time.

import time

import dagster as dg
import redis

from ...chain.rpc import NodeUnavailable, RpcClient
from ...evaluation.rewind import rewind
from ...evaluation.ticks import Cursor, hashes_needed, plan_tick
from ...lake.partitions import range_of
from ..market import op_name
from ..partitions import BLOCK_RANGES, block_ranges
from ..resources import ChainResource
from .assets import ASSET, predictive_evaluation_job

MARKET_TAG = "liq/market"  # the production run queue allows one evaluation run per value (deploy/production)


def market_tag(chain_id: int | None, addresses_provider: str | None) -> str:
    """The market an evaluation run is for: `<chain id>:<PoolAddressesProvider>` (lower case)."""
    return f"{chain_id if chain_id is not None else 'unknown'}:{(addresses_provider or 'unknown').lower()}"


IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def chain_hashes(rpc: RpcClient, cursor: Cursor | None, anchor: int) -> tuple[int, dict[int, str | None]]:
    """The head and the hashes `plan_tick` needs: one round trip for the head, one for the cursor's block and the
    anchor, one more only when the cursor's block is gone (every block the cursor remembers)."""
    latest = rpc.call("eth_getBlockByNumber", "latest", False)
    if not latest:
        raise NodeUnavailable("the node answered null for its latest block")
    head = int(latest["number"], 16)
    hashes: dict[int, str | None] = {head: latest["hash"]}
    while missing := hashes_needed(cursor, head, hashes, anchor):
        answers = rpc.batch([("eth_getBlockByNumber", [hex(block), False]) for block in missing])
        hashes.update({block: (answer or {}).get("hash") for block, answer in zip(missing, answers, strict=True)})
    return head, hashes


@dg.sensor(
    job=predictive_evaluation_job,
    minimum_interval_seconds=2,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Each tick: add finished block ranges as partitions, evaluate the newest block (coalescing); "
    "a new chain under the cursor (restarted devnet, reorg) rolls the lake and Redis back first.",
)
def new_block_sensor(context: dg.SensorEvaluationContext, chain: ChainResource) -> dg.SensorResult:
    settings = chain.settings()
    cursor = Cursor.decode(context.cursor)
    anchor = max(settings.start_block, settings.state_history_from_block)  # the first block with state
    try:
        with chain.client() as rpc:
            head, hashes = chain_hashes(rpc, cursor, anchor)
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
        cursor,
        head,
        known,
        in_flight,
        settings.lake_range_blocks,
        settings.confirmations,
        settings.start_block,
        hashes=hashes,
        anchor=anchor,
    )
    if plan.rewound_to is not None:
        try:
            done = rewind(settings, plan.rewound_to)
        except (NodeUnavailable, redis.RedisError) as error:
            reason = f"new chain, but the old one's state cannot be dropped yet ({type(error).__name__}: {error})"
            return dg.SensorResult(skip_reason=reason, cursor=context.cursor)
        context.log.warning(
            f"{plan.notice} (lake: {len(done.lake_trimmed)} file(s) trimmed, {len(done.lake_deleted)} deleted; "
            f"Redis: {len(done.redis_deleted)} key(s) deleted)"
        )
    requests = []
    if plan.evaluate_block is not None:
        block = plan.evaluate_block
        requests.append(
            dg.RunRequest(
                run_key=plan.run_key,
                partition_key=range_of(block, settings.lake_range_blocks).key,
                run_config=dg.RunConfig(
                    ops={
                        op_name(ASSET): {
                            "config": {"block": block, "from_block": plan.from_block, "observed_at": seen_at}
                        }
                    }
                ),
                tags={
                    MARKET_TAG: market_tag(settings.chain_id, settings.aave_addresses_provider),
                    "liq/block": str(block),
                    "liq/from_block": str(plan.from_block),
                    **({"liq/block_hash": plan.block_hash} if plan.block_hash else {}),
                },
            )
        )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[block_ranges.build_add_request(plan.new_partitions)]
        if plan.new_partitions
        else [],
        cursor=plan.cursor.encode(),
        skip_reason=None if requests else (plan.skipped_reason or None),
    )
