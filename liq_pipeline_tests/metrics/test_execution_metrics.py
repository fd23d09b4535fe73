"""The executor's metrics: served with the watcher's (scraped over HTTP from the real server), what each call
records, every series known to the dashboard and rule tests, and an executor's own registry."""

from __future__ import annotations

import pytest

from liq_pipeline.metrics import SEND_LATENCY_BUCKETS, BlockMetrics, ExecutionMetrics, exposed_names, serve_metrics
from liq_pipeline_tests.fixtures.prometheus import known_series, sample_value, scrape

SERIES = (
    "liq_execution_attempts_total",
    "liq_execution_profit_expected_usd_total",
    "liq_execution_profit_realized_usd_total",
    "liq_execution_loss_usd_total",
    "liq_execution_send_latency_seconds_bucket",
    "liq_execution_send_latency_seconds_count",
    "liq_execution_send_latency_seconds_sum",
    "liq_execution_pending_to_sent_seconds_bucket",
    "liq_execution_pending_to_sent_seconds_count",
    "liq_execution_replacements_total",
    "liq_execution_record_failures_total",
)


def test_served_with_the_watchers_metrics_and_scraped_over_http() -> None:
    metrics = BlockMetrics()
    execution = metrics.execution
    execution.sent("live", 0.012)
    execution.sent("live", 0.250)
    execution.sent("dry_run", 0.004)
    execution.sent("live", 0.009, "pending")  # the pre-confirmation lane: its own histogram
    execution.outcome("live", "included", expected_profit_usd=40.0, realized_profit_usd=39.8)
    execution.outcome("live", "reverted", expected_profit_usd=10.0, realized_profit_usd=-0.5)
    execution.outcome("live", "lost", expected_profit_usd=7.0)
    execution.outcome("dry_run", "dry_run", expected_profit_usd=3.0)
    execution.replaced(2)
    execution.record_failure("redis")
    with serve_metrics(metrics.registry, port=0) as server:
        families = scrape(server.url)
    assert families["liq_execution_attempts"]["type"] == "counter"
    assert sample_value(families, "liq_execution_attempts_total", mode="live", outcome="included") == 1
    assert sample_value(families, "liq_execution_attempts_total", mode="live", outcome="reverted") == 1
    assert sample_value(families, "liq_execution_attempts_total", mode="dry_run", outcome="dry_run") == 1
    assert sample_value(families, "liq_execution_attempts_total", mode="live", outcome="dropped") == 0  # exists at 0
    assert sample_value(families, "liq_execution_profit_expected_usd_total", outcome="included") == 40.0
    assert sample_value(families, "liq_execution_profit_expected_usd_total", outcome="lost") == 7.0
    assert sample_value(families, "liq_execution_profit_realized_usd_total") == pytest.approx(39.8)
    assert sample_value(families, "liq_execution_loss_usd_total") == pytest.approx(0.5)
    assert sample_value(families, "liq_execution_send_latency_seconds_count", mode="live") == 2
    assert sample_value(families, "liq_execution_send_latency_seconds_bucket", mode="live", le="0.015") == 1
    assert sample_value(families, "liq_execution_send_latency_seconds_bucket", mode="live", le="0.5") == 2
    assert sample_value(families, "liq_execution_send_latency_seconds_bucket", mode="dry_run", le="0.005") == 1
    assert sample_value(families, "liq_execution_pending_to_sent_seconds_count", mode="live") == 1
    assert sample_value(families, "liq_execution_pending_to_sent_seconds_bucket", mode="live", le="0.01") == 1
    assert sample_value(families, "liq_execution_pending_to_sent_seconds_count", mode="dry_run") == 0
    assert sample_value(families, "liq_execution_replacements_total") == 2
    assert sample_value(families, "liq_execution_record_failures_total", kind="redis") == 1
    assert sample_value(families, "liq_execution_record_failures_total", kind="dropped") == 0
    # the watcher's own metrics are still there, in the same registry
    assert sample_value(families, "opportunity_latency_seconds_count") == 0


def test_latency_buckets_span_1_to_500_ms_around_the_60_ms_target() -> None:
    assert SEND_LATENCY_BUCKETS[0] == 0.001 and SEND_LATENCY_BUCKETS[-1] == 0.5
    assert 0.06 in SEND_LATENCY_BUCKETS and list(SEND_LATENCY_BUCKETS) == sorted(set(SEND_LATENCY_BUCKETS))


def test_every_series_is_known_to_the_rule_and_dashboard_tests() -> None:
    assert set(SERIES) <= exposed_names(BlockMetrics().registry)
    assert set(SERIES) <= known_series()


def test_an_executor_alone_has_a_registry_of_its_own() -> None:
    first, second = ExecutionMetrics(), ExecutionMetrics()  # no "Duplicated timeseries"
    first.outcome("live", "included", 1.0, 1.0)
    with serve_metrics(first.registry, port=0) as server:
        families = scrape(server.url)
    assert sample_value(families, "liq_execution_attempts_total", mode="live", outcome="included") == 1
    assert second.registry is not first.registry
    second.outcome("live", "a_new_outcome")  # an outcome not declared yet gets its series on first use
