"""The platform's new-block sensor and its evaluation run on the production profile's instance (Postgres): a tick
adds the finished ranges as partitions in Postgres and asks for one evaluation run tagged with its market; that run
(executed in-process, as the daemon launches it) succeeds with its checks, all recorded in Postgres; while it is in
flight, the queue's limit holds a second evaluation run of the same market."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from liq_pipeline.cache.server import EmbeddedRedis
from liq_pipeline.config import settings_fields
from liq_pipeline.defs.partitions import BLOCK_RANGES
from liq_pipeline.defs.predictive.assets import liquidation_candidates
from liq_pipeline.defs.predictive.sensors import MARKET_TAG, market_tag, new_block_sensor
from liq_pipeline.defs.resources import RESOURCES
from liq_pipeline.devnet import actions


@pytest.fixture
def platform_env(chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, production_home):
    """Settings for a run against the session devnet, DAGSTER_HOME the production profile on Postgres."""
    for name in settings_fields():
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "d"  # short: unix socket paths are limited to ~100 bytes
    monkeypatch.chdir(tmp_path)
    head = int(chain.rpc.call("eth_blockNumber"), 16)
    _home, pg_env = production_home
    settings = {
        "RPC_URL": chain.node.url,
        "AAVE_ADDRESSES_PROVIDER": chain.market.addresses_provider,
        "AAVE_PROTOCOL_VERSION": "3.0",
        "DATA_DIR": str(data),
        "LAKE_RANGE_BLOCKS": "10",
        "CONFIRMATIONS": "0",
        "STATE_HISTORY_FROM_BLOCK": str(head),  # loaded from a state dump: no state before
        "HF_CHECK_SAMPLE": "1000",
        "STABLE_ASSET_SYMBOLS": "USDC,DAI",
        "PREDICTIVE_ENABLED": "true",
        "BORROWERS_INDEX_MODE": "redis",
        **pg_env,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    yield data
    EmbeddedRedis(data / "redis").stop()


@pytest.mark.integration
@pytest.mark.slow
def test_a_sensor_tick_and_its_evaluation_run_on_postgres(chain, platform_env, postgres):
    from dagster._utils.tags import TagConcurrencyLimitsCounter

    actions.mine_blocks(chain.rpc, 12)
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        with dg.build_sensor_context(instance=instance, resources=RESOURCES) as context:
            tick = new_block_sensor(context)
        for request in tick.dynamic_partitions_requests:
            instance.add_dynamic_partitions(BLOCK_RANGES, list(request.partition_keys))
        assert len(tick.run_requests) == 1
        request = tick.run_requests[0]
        assert request.tags[MARKET_TAG] == market_tag(None, chain.market.addresses_provider)
        stored = {row[0] for row in postgres.query("SELECT partition FROM dynamic_partitions")}
        assert request.partition_key in stored

        result = dg.materialize(
            [liquidation_candidates],
            partition_key=request.partition_key,
            instance=instance,
            resources=RESOURCES,
            run_config=request.run_config,
            tags=request.tags,
        )
        assert result.success
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks["hf_agreement"] is True
        (status,) = postgres.query(f"SELECT status FROM runs WHERE run_id = '{result.run_id}'")[0]
        assert status == "SUCCESS"
        stored_checks = postgres.query(
            f"SELECT check_name FROM asset_check_executions WHERE run_id = '{result.run_id}'"
        )
        assert ("hf_agreement",) in stored_checks

        # the same market's next evaluation waits while one is in flight; the queue counts from Postgres
        in_flight = instance.create_run_for_job(
            dg.GraphDefinition(name="in_flight", node_defs=[]).to_job(), tags=request.tags
        )
        queue = instance.run_coordinator.get_run_queue_config()
        counter = TagConcurrencyLimitsCounter(queue.tag_concurrency_limits, [in_flight])
        assert counter.is_blocked(result.dagster_run)
