"""The production Dagster profile (deploy/production/dagster.yaml) on a real PostgreSQL: the instance it describes
stores runs, events and partitions in Postgres, queues runs with the tag limits of issue #17, retries runs whose
worker died; the dev profile (the repository's dagster.yaml, `liq dev`) stays on SQLite."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from liq_pipeline.defs.predictive.sensors import MARKET_TAG, market_tag
from liq_pipeline_tests.deploy.postgres import Postgres

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ROOT / "deploy" / "production" / "dagster.yaml"


@pytest.fixture
def production_instance(postgres: Postgres, tmp_path: Path, monkeypatch) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(PRODUCTION, home / "dagster.yaml")
    for name, value in postgres.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def test_the_production_instance_keeps_everything_in_postgres(production_instance, postgres):
    storage = production_instance.run_storage
    assert type(storage).__name__ == "PostgresRunStorage"
    assert type(production_instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(production_instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    production_instance.add_dynamic_partitions("block_ranges", ["000000000000-000000000009"])
    rows = postgres.query("SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'block_ranges'")
    assert ("000000000000-000000000009",) in rows


def test_runs_are_queued_with_the_limits_of_issue_17(production_instance):
    coordinator = production_instance.run_coordinator
    assert type(coordinator).__name__ == "QueuedRunCoordinator"
    queue = coordinator.get_run_queue_config()
    limits = {limit["key"]: limit for limit in queue.tag_concurrency_limits}
    assert limits[MARKET_TAG]["limit"] == 1 and limits[MARKET_TAG]["value"] == {"applyLimitPerUniqueValue": True}
    assert limits["dagster/backfill"]["limit"] >= 2  # a backfill's ranges side by side
    assert queue.max_concurrent_runs >= 2
    assert production_instance.run_retries_enabled
    assert production_instance.run_retries_max_retries >= 1
    assert not production_instance.run_retries_retry_on_asset_or_op_failure  # a dg.Failure is deterministic
    assert production_instance.run_monitoring_enabled  # a dead worker is noticed, so its run is retried


def test_the_queue_holds_a_second_evaluation_run_of_the_same_market(production_instance):
    """The daemon's own limit counter, on runs in the Postgres run storage: one evaluation per market runs, the
    other market's goes, the same market's second waits."""
    from dagster._utils.tags import TagConcurrencyLimitsCounter  # what the queue daemon counts with

    one, other = market_tag(1, "0xAbC"), market_tag(1, "0xdef")
    running = production_instance.create_run_for_job(
        dg.GraphDefinition(name="evaluation", node_defs=[]).to_job(), tags={MARKET_TAG: one}
    )
    production_instance.handle_new_event(_started(running.run_id))
    queue = production_instance.run_coordinator.get_run_queue_config()
    in_progress = production_instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING])
    )
    assert [r.run_id for r in in_progress] == [running.run_id]
    counter = TagConcurrencyLimitsCounter(queue.tag_concurrency_limits, in_progress)
    same = production_instance.create_run_for_job(
        dg.GraphDefinition(name="evaluation", node_defs=[]).to_job(), tags={MARKET_TAG: one}
    )
    elsewhere = production_instance.create_run_for_job(
        dg.GraphDefinition(name="evaluation", node_defs=[]).to_job(), tags={MARKET_TAG: other}
    )
    assert counter.is_blocked(same)
    assert not counter.is_blocked(elsewhere)


def _started(run_id: str):
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.events.log import EventLogEntry

    event = DagsterEvent(DagsterEventType.RUN_START.value, job_name="evaluation")
    return EventLogEntry(
        error_info=None, level="INFO", user_message="", run_id=run_id, timestamp=0.0, dagster_event=event
    )


def test_the_dev_profile_is_not_the_production_one():
    dev = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    production = yaml.safe_load(PRODUCTION.read_text())
    assert "storage" not in dev, "`liq dev` stays on SQLite (DAGSTER_HOME's default storage)"
    assert dev["run_coordinator"]["class"] == "DefaultRunCoordinator"
    assert "postgres" in production["storage"]
    assert production["run_coordinator"]["class"] == "QueuedRunCoordinator"
