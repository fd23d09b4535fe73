"""The watcher's metrics: what observe() records and the HF distribution (vectorized, checked against a plain
count). What they cost per block is a benchmark figure (`liq bench-watch --synthetic`: metrics_observe_ms_p50)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from liq_pipeline.metrics import HF_BUCKETS, BlockMetrics, HfDistribution, exposed_names


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return _samples(registry)[(name, tuple(sorted(labels.items())))]


def test_own_registry_not_the_global_one() -> None:
    metrics = BlockMetrics()
    assert metrics.registry is not REGISTRY
    assert "predictive_candidates_total" not in {m.name for m in REGISTRY.collect()}
    BlockMetrics()  # a second instance in the same process: no "Duplicated timeseries" error


def test_observe_records_one_block() -> None:
    clock = iter([1_699_999_990.0, 1_700_000_000.0, 1_700_000_001.0, 1_700_000_002.0])
    metrics = BlockMetrics(clock=lambda: next(clock))
    r = metrics.registry
    assert _value(r, "liq_watcher_last_block_timestamp_seconds") == 1_699_999_990.0  # the start, before any block
    assert math.isnan(_value(r, "liq_redis_up"))  # unknown until the watcher reports it
    # every scenario and the usual RPC error kinds exist at 0 before the first block (rate() needs a baseline)
    assert _value(r, "predictive_candidates_total", scenario="extreme") == 0
    assert _value(r, "liq_rpc_errors_total", kind="timeout") == 0
    assert math.isnan(_value(r, "liq_miss_rate"))

    hf = pl.Series([0.97, 1.0, 1.004, 1.5, float("inf"), None])
    metrics.observe(100, 0.012, 6, 0.003, {"baseline": 1, "adverse": 3, "extreme": 4}, {"baseline": 1}, hf, 2)
    metrics.observe(101, 0.030, 6, 0.004, {"baseline": 2, "adverse": 3, "extreme": 5}, None, None, 0)
    metrics.observe(102, 0.030, 6, 0.004, {"extreme": 0}, None, None, 0)  # left-out scenarios count 0

    assert _value(r, "predictive_candidates_total", scenario="baseline") == 3
    assert _value(r, "predictive_candidates_total", scenario="extreme") == 9
    assert _value(r, "liq_candidates", scenario="extreme") == 0  # the set of the last block
    assert _value(r, "liq_candidates", scenario="baseline") == 0
    assert _value(r, "predictive_crossings_confirmed_total", scenario="baseline") == 1
    assert _value(r, "predictive_crossings_confirmed_total", scenario="adverse") == 0
    assert _value(r, "liq_last_evaluated_block") == 102
    assert _value(r, "liq_blocks_behind_head") == 0
    assert _value(r, "liq_watched_users") == 6
    assert _value(r, "hf_calc_users_per_sec") == pytest.approx(6 / 0.004)
    assert _value(r, "liq_watcher_last_block_timestamp_seconds") == 1_700_000_002.0
    assert _value(r, "opportunity_latency_seconds_count") == 3
    assert _value(r, "opportunity_latency_seconds_sum") == pytest.approx(0.072)
    assert _value(r, "opportunity_latency_seconds_bucket", le="0.015") == 1
    assert _value(r, "opportunity_latency_seconds_bucket", le="0.03") == 3
    assert _value(r, "hf_calc_batch_seconds_bucket", le="0.005") == 3
    # hf_values=None kept the first block's distribution: 5 users with a HF (the null is left out)
    assert _value(r, "liq_hf_distribution_bucket", le="0.98") == 1
    assert _value(r, "liq_hf_distribution_bucket", le="1.0") == 2  # HF == 1.0 counts in le=1.0
    assert _value(r, "liq_hf_distribution_bucket", le="1.01") == 3
    assert _value(r, "liq_hf_distribution_bucket", le="10.0") == 4
    assert _value(r, "liq_hf_distribution_bucket", le="+Inf") == 5  # inf (no debt) only here
    assert _value(r, "liq_hf_distribution_gcount") == 5
    assert _value(r, "liq_hf_distribution_gsum") == pytest.approx(0.97 + 1.0 + 1.004 + 1.5)


def test_events() -> None:
    metrics = BlockMetrics(scenarios=("baseline",))
    r = metrics.registry
    metrics.rpc_error("timeout")
    metrics.rpc_error("timeout")
    metrics.rpc_error("rate_limited", 3)  # a kind not created up front
    metrics.redis_up(False)
    metrics.set_miss_rate(0.25)
    metrics.asset_check("liquidation_candidates", "hf_agreement", False)
    metrics.asset_check("price_histories", "block_continuity", True)
    metrics.set_blocks_behind(7)
    metrics.observe(5, 0.01, 1, 0.001, {"newscenario": 2})  # an unknown scenario gets its series on first use
    assert _value(r, "liq_rpc_errors_total", kind="timeout") == 2
    assert _value(r, "liq_rpc_errors_total", kind="rate_limited") == 3
    assert _value(r, "liq_redis_up") == 0
    assert _value(r, "liq_miss_rate") == 0.25
    assert _value(r, "liq_asset_check_passed", asset="liquidation_candidates", check="hf_agreement") == 0
    assert _value(r, "liq_asset_check_passed", asset="price_histories", check="block_continuity") == 1
    assert _value(r, "liq_blocks_behind_head") == 7
    assert _value(r, "predictive_candidates_total", scenario="newscenario") == 2
    metrics.redis_up(True)
    metrics.set_miss_rate(None)
    assert _value(r, "liq_redis_up") == 1
    assert math.isnan(_value(r, "liq_miss_rate"))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hf_distribution_matches_a_plain_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(0.2, 0.5, 5_000)
    values[:50] = np.inf
    values[50:60] = np.nan
    values[60:80] = rng.choice(HF_BUCKETS, 20)  # exactly on bounds: le is inclusive
    dist = HfDistribution()
    for given in (values, pl.Series(values), values.tolist()):
        dist.set(given)
        expected = [sum(1 for v in values if v <= bound) for bound in HF_BUCKETS]
        expected.append(sum(1 for v in values if not math.isnan(v)))
        assert list(dist.counts) == expected
    dist.set(pl.Series([], dtype=pl.Float64))
    assert set(dist.counts) == {0}
    dist.set(pl.Series([1, 2, 3]))  # integers are cast
    assert dist.counts[-1] == 3
    with pytest.raises(ValueError):
        HfDistribution(bounds=(1.0, 0.9))


def test_exposed_names_cover_every_series() -> None:
    metrics = BlockMetrics()
    names = exposed_names(metrics.registry)
    scraped = {name for name, _ in _samples(metrics.registry)}
    assert scraped <= names
    for name in (
        "predictive_candidates_total",
        "predictive_crossings_confirmed_total",
        "hf_calc_users_per_sec",
        "hf_calc_batch_seconds_bucket",
        "opportunity_latency_seconds_bucket",
        "opportunity_latency_seconds_count",
        "liq_miss_rate",
        "liq_blocks_behind_head",
        "liq_rpc_errors_total",
        "liq_redis_up",
        "liq_last_evaluated_block",
        "liq_asset_check_passed",
        "liq_hf_distribution_bucket",
        "liq_hf_distribution_gcount",
    ):
        assert name in names


def test_observe_at_100k_users_counts_every_user() -> None:
    """The HF distribution of 100k users (its cost per block is a benchmark figure: `liq bench-watch --synthetic`'s
    metrics_observe_ms_p50 and metrics_observe_vs_block_p50, not a timed test)."""
    rng = np.random.default_rng(7)
    hf = pl.Series(np.concatenate([rng.lognormal(0.3, 0.4, 99_000), np.full(1_000, np.inf)]))
    metrics = BlockMetrics()
    per_scenario = {"baseline": 12, "adverse": 40, "extreme": 150}
    for block in range(3):
        metrics.observe(block, 0.02, 100_000, 0.015, per_scenario, {"baseline": 1}, hf, 1)
    metrics.observe(3, 0.02, 100_000, 0.015, per_scenario, {"baseline": 1}, None, 1)  # None keeps the distribution
    generate_latest(metrics.registry)
    assert metrics.hf_distribution.counts[-1] == 100_000
