"""The platform as deployed on the production profile (issue #17): a code server and `dagster-daemon run` on a real
PostgreSQL (QueuedRunCoordinator, 2 runs per backfill), the session devnet, the lake on S3 (a moto
server). One run of it:

- a backfill of several ranges of every lake asset, launched as the UI launches it (GraphQL
  `launchPartitionBackfill`) and run by the daemon, one run per range, two at a time, while the node holds the first
  range's logs back (held_node.py) until the second range's borrower_snapshots waits for them (it reads the
  pool_events of every earlier range: defs/lake/assets.py): the lake holds the bytes of a sequential backfill
  (`liq backfill`, in block order), and every range's borrower_snapshots came after the pool_events of the ranges
  up to it. Without the wait, that second range failed ("cannot know the borrowers before block 10").
- the new-block sensor's tick -> an evaluation run, its checks recorded in Postgres;
- the backfill's asset checks in Postgres, and a failing one (the watcher's p99 latency) alerted by the daemon's
  run-status sensor into Redis.

The schedules are stopped (the lake schedule would backfill the same ranges on its own at the minute's turn); the
daemon's loops tick every few seconds instead of 30 s (daemon.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest

from liq_pipeline.cache import open_market_cache, read_alerts
from liq_pipeline.cache.server import EmbeddedRedis
from liq_pipeline.commands.backfill import backfill
from liq_pipeline.config import load_settings, settings_fields
from liq_pipeline.defs.lake.assets import ALL_LAKE_ASSETS
from liq_pipeline.defs.partitions import BLOCK_RANGES
from liq_pipeline.defs.predictive.sensors import MARKET_TAG
from liq_pipeline.devnet import actions
from liq_pipeline.lake.open import open_lake
from liq_pipeline.lake.partitions import ranges_covering
from liq_pipeline_tests.deploy.daemon import deployment, launch_partition_backfill
from liq_pipeline_tests.deploy.held_node import HeldNode
from liq_pipeline_tests.lake import moto_s3 as s3_fixtures

moto_s3, s3_env = s3_fixtures.moto_s3, s3_fixtures.s3_env  # the S3 server (session) and a lake URL per test

SIZE = 10
RANGES = 3
LAKE_KEYS = [a.key for a in ALL_LAKE_ASSETS]
DATASETS = [key.path[-1] for key in LAKE_KEYS]
SLOW_BLOCK_MS = 900.0  # one watcher record this slow fails watcher_latency_p99 (KPI_WATCHER_P99_MS: 50)
BACKFILL_TAG = "dagster/backfill"
PARTITION_TAG = "dagster/partition"
ENDED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


@pytest.fixture
def lake_url(s3_env) -> str:
    """The platform's lake on S3: a fresh prefix of the moto server's bucket. (The folder lake on Postgres: the
    sensor, checks and `liq backfill --parallel` tests beside this one; where the lake lives does not change the
    ordering this test proves, and each run of it costs ~50-90 s of Dagster launching runs.)"""
    return s3_env


@pytest.fixture
def settings_env(chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, production_home):
    """The platform's settings against the session devnet, one Redis for every DATA_DIR, DAGSTER_HOME the
    production profile on Postgres."""
    for name in settings_fields():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    redis = EmbeddedRedis(tmp_path / "redis")
    _home, pg_env = production_home
    settings = {
        "RPC_URL": chain.node.url,
        "AAVE_ADDRESSES_PROVIDER": chain.market.addresses_provider,
        "AAVE_PROTOCOL_VERSION": "3.0",
        "REDIS_URL": redis.ensure_running().url,
        "LAKE_RANGE_BLOCKS": str(SIZE),
        "CONFIRMATIONS": "0",
        "HF_CHECK_SAMPLE": "1000",
        "STABLE_ASSET_SYMBOLS": "USDC,DAI",
        "PREDICTIVE_ENABLED": "true",
        "BORROWERS_INDEX_MODE": "redis",
        **pg_env,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    yield tmp_path
    redis.stop()


def _lake_bytes(lake) -> dict[str, bytes]:
    return {
        f"{dataset}/{block_range.key}": lake.path(dataset, block_range).read_bytes()
        for dataset in DATASETS
        for block_range in lake.ranges(dataset)
    }


def _slow_watcher_block(chain, block: int) -> None:
    """One record of the watcher's stream, as the watcher writes it, for `block`: SLOW_BLOCK_MS from seen to
    written."""
    cache = open_market_cache(load_settings(), 31337, chain.market.pool)
    record = {
        "block": block,
        "hash": "0x" + "ab" * 32,
        "timestamp": 1_700_000_000,
        "seen_at": 1_700_000_000.0,
        "written_at": 1_700_000_000.0 + SLOW_BLOCK_MS / 1000,
        "latency_ms": SLOW_BLOCK_MS,
        "users": 200,
        "touched": 1,
        "exact_redecided": 0,
        "reorg_depth": 0,
        "candidates_baseline": 0,
        "candidates_adverse": 0,
        "candidates_extreme": 0,
    }
    cache.cache.client.xadd(cache.cache.keys.key("blocks"), {k: str(v) for k, v in record.items()})


def _max_in_flight(records) -> int:
    """The most runs whose [start, end] overlapped at one instant."""
    edges = sorted([(r.start_time, 1) for r in records] + [(r.end_time, -1) for r in records])
    most = now = 0
    for _at, step in edges:
        now += step
        most = max(most, now)
    return most


def _runs(instance, backfill_id: str):
    return instance.get_run_records(filters=dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}))


def _waited(instance, record) -> bool:
    """Whether the run's borrower_snapshots step went up for retry (waiting for earlier ranges' pool_events)."""
    retries = instance.get_records_for_run(record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
    return any(r.event_log_entry.step_key == "borrower_snapshots" for r in retries.records)


def _wait_for_backfill(instance, running, backfill_id: str, node: HeldNode, second: str, timeout: float = 300.0):
    """The backfill once done; meanwhile, the node lets the first range's logs go once it holds them and the second
    range's borrower_snapshots is waiting for them (True if it was)."""
    from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES

    deadline, waited = time.monotonic() + timeout, False
    while time.monotonic() < deadline:
        running.check_alive()
        if not waited and node.seen.is_set():
            runs = [r for r in _runs(instance, backfill_id) if r.dagster_run.tags.get(PARTITION_TAG) == second]
            if any(_waited(instance, r) or r.dagster_run.status in ENDED for r in runs):
                waited = any(_waited(instance, r) for r in runs)
                node.release()
        found = instance.get_backfill(backfill_id)
        if found.status in BULK_ACTION_TERMINAL_STATUSES:
            return found, waited
        time.sleep(0.5)
    raise AssertionError(f"backfill {backfill_id} not done after {timeout:.0f}s: {found.status}")


def _wait_for(what: str, find, running, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running.check_alive()
        found = find()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"no {what} after {timeout:.0f}s")


def _materialized(instance, dataset: str, keys: list[str]) -> dict[str, float]:
    """When each partition of the lake asset `dataset` was last materialized."""
    key = next(k for k in LAKE_KEYS if k.path[-1] == dataset)
    events = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=keys), limit=100)
    return {record.partition_key: record.timestamp for record in reversed(events.records)}


def _failure(instance, run_id: str) -> str:
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event and event.is_step_failure:
            return event.event_specific_data.error.message.strip()[:300]
    return "no step failed"


@pytest.mark.integration
@pytest.mark.slow
def test_the_platform_on_postgres_with_a_ui_backfill(chain, settings_env, lake_url, postgres, monkeypatch):
    actions.mine_blocks(chain.rpc, RANGES * SIZE)
    ranges = ranges_covering(0, RANGES * SIZE - 1, SIZE)
    keys = [r.key for r in ranges]
    _slow_watcher_block(chain, ranges[1].start + 3)
    node = HeldNode(chain.node.url, ranges[0].start, ranges[0].end)

    platform = {"DATA_DIR": str(settings_env / "platform"), "RPC_URL": node.url, "LAKE_URL": lake_url or ""}
    # the code server loads while the reference runs
    with node, deployment(settings_env / "deploy", platform) as running:
        # the reference: `liq backfill` (ranges one after the other, in block order), in-process, on a local lake
        monkeypatch.setenv("DATA_DIR", str(settings_env / "sequential"))
        with dg.instance_for_test() as scratch:
            report = backfill(0, RANGES * SIZE - 1, instance=scratch)
        assert report.ranges == keys and not report.failed, report.failed
        expected = _lake_bytes(open_lake(load_settings()))
        assert {name.split("/")[0] for name in expected} == set(DATASETS)

        for name, value in platform.items():
            monkeypatch.setenv(name, value)
        lake = open_lake(load_settings())
        assert lake.on_object_store == bool(lake_url)
        with dg.DagsterInstance.get() as instance:
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            instance.add_dynamic_partitions(BLOCK_RANGES, keys)
            with running.graphql_context(instance) as context:
                assert running.stop_schedules(context)
                running.start_daemon()
                backfill_id = launch_partition_backfill(context, LAKE_KEYS, keys)
            done, waited = _wait_for_backfill(instance, running, backfill_id, node, keys[1])
            records = _runs(instance, backfill_id)
            failures = {
                r.dagster_run.tags.get(PARTITION_TAG): _failure(instance, r.dagster_run.run_id)
                for r in records
                if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS
            }
            assert not failures, failures
            assert done.status.value == "COMPLETED_SUCCESS", done.status
            assert sorted(r.dagster_run.tags[PARTITION_TAG] for r in records) == keys  # one run per range

            # the sequential bytes, two runs side by side, and the order that gave them
            found = _lake_bytes(lake)
            assert sorted(found) == sorted(expected)
            assert not [name for name in found if found[name] != expected[name]], "not the sequential backfill's bytes"
            assert node.seen.is_set() and waited, "the second range's snapshot did not wait for the first's events"
            assert _max_in_flight(records) == 2, [(r.start_time, r.end_time) for r in records]
            events = _materialized(instance, "pool_events", keys)
            snapshots = _materialized(instance, "borrower_snapshots", keys)
            assert sorted(snapshots) == keys
            assert all(snapshots[k] > max(events[j] for j in keys[: i + 1]) for i, k in enumerate(keys))

            # the sensor's evaluation run, its checks in Postgres
            def evaluated():
                runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
                return [r for r in runs if MARKET_TAG in r.tags]

            evaluation = _wait_for("successful evaluation run", evaluated, running)[0]
            checks = postgres.query(
                f"SELECT check_name, execution_status FROM asset_check_executions WHERE run_id = '{evaluation.run_id}'"
            )
            assert ("hf_agreement", "SUCCEEDED") in checks, checks

            # the backfill's checks, and the failing one alerted by the daemon's run-status sensor
            run_ids = ", ".join(repr(r.dagster_run.run_id) for r in records)
            backfill_checks = postgres.query(
                f"SELECT check_name, execution_status FROM asset_check_executions WHERE run_id IN ({run_ids})"
            )
            names = {name for name, _status in backfill_checks}
            assert names >= {"block_continuity", "miss_rate", "watcher_latency_p99"}, backfill_checks
            assert ("watcher_latency_p99", "FAILED") in backfill_checks
            cache = open_market_cache(load_settings(), 31337, chain.market.pool)

            def alerted():
                alerts = read_alerts(cache.cache)
                return [a for a in alerts if a.kind == "check_failed" and "watcher_latency_p99" in a.message]

            assert _wait_for("alert of the failed check", alerted, running)
