"""The backtest as Dagster assets (`crossings`, `predictions`, `backtest_report`), in-process on the session devnet
(real anvil, real Aave V3): one range with a price shock and a competitor liquidating, materialized through
Dagster; the report equals `liq backtest`'s (run_backtest) for the same range; its headline figures are numeric
metadata and its plots PNG images in Markdown metadata; the checks pass on it, and fail on a doctored one.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from liq_pipeline.backtest import grading, plots
from liq_pipeline.backtest.datasets import PREDICTIONS, write_frames
from liq_pipeline.backtest.grading import Window
from liq_pipeline.backtest.moves import price_moves
from liq_pipeline.backtest.run import plan_range, run_backtest
from liq_pipeline.chain.rpc import RpcClient
from liq_pipeline.config import load_settings
from liq_pipeline.defs.backtest.assets import (
    BACKTEST_ASSETS,
    CHECK_LEAD_TIME,
    CHECK_PRECISION,
    CHECK_RECALL,
    HEADLINE,
    backtest_report,
    lead_time_check,
    precision_check,
    recall_check,
)
from liq_pipeline.defs.backtest.schedules import ranges_to_backtest
from liq_pipeline.defs.backtest.store import RangeFiles
from liq_pipeline.defs.partitions import BLOCK_RANGES
from liq_pipeline.defs.resources import RESOURCES
from liq_pipeline.devnet import actions
from liq_pipeline.devnet.simulate import SimConfig, simulate
from liq_pipeline.lake.partitions import range_of

RANGE_SIZE = 20
SHOCK = {"WETH": 0.85, "WBTC": 0.85, "AERO": 0.7}  # the share of each price left
PNG = b"\x89PNG\r\n\x1a\n"
PLOTS_OUT = Path("/tmp/backtest_plots")  # a copy of the PNGs to look at


def _head(chain) -> int:
    return int(chain.rpc.call("eth_blockNumber"), 16)


def _shocked_range(chain) -> str:
    """A range of RANGE_SIZE blocks, all mined: calm blocks, a price shock, then the competitor liquidating."""
    block_range = range_of(_head(chain) + 6, RANGE_SIZE)
    calm = SimConfig(blocks=block_range.start + 5 - _head(chain), seed=7, shock_probability=0.0,
                     arrivals_per_block=0.0, liquidation_delay=2)  # fmt: skip
    simulate(chain.rpc, chain.market, calm, chain.users, dex=None)
    prices = actions.oracle_prices(chain.rpc, chain.market)
    actions.set_prices(chain.rpc, chain.market, {s: int(prices[s] * f) for s, f in SHOCK.items()})
    left = block_range.end - _head(chain)
    if left > 0:
        simulate(
            chain.rpc, chain.market, SimConfig(**{**calm.__dict__, "blocks": left, "seed": 8}), chain.users, dex=None
        )
    assert _head(chain) >= block_range.end
    return block_range.key


@pytest.fixture
def backtest_env(platform_env, monkeypatch):
    monkeypatch.setenv("LAKE_RANGE_BLOCKS", str(RANGE_SIZE))
    monkeypatch.setenv("PREDICTIVE_HORIZON_SEC", "20")
    monkeypatch.setenv("BACKTEST_MIN_PRECISION", "0")
    monkeypatch.setenv("BACKTEST_MIN_LEAD_TIME_S", "0")
    return platform_env


def _materialize(instance, key: str, assets=BACKTEST_ASSETS) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions(BLOCK_RANGES, [key])
    return dg.materialize(assets, partition_key=key, instance=instance, resources=RESOURCES, raise_on_error=False)


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _report_metadata(result) -> dict:
    return result.asset_materializations_for_node("backtest_report")[0].metadata


def _png_of(markdown: str) -> bytes:
    found = re.fullmatch(r"!\[\w+\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert found, markdown[:80]
    return base64.b64decode(found.group(1))


@pytest.mark.integration
def test_the_assets_grade_a_range_like_liq_backtest_and_show_the_plots(chain, backtest_env, instance):
    key = _shocked_range(chain)
    result = _materialize(instance, key)
    assert result.success
    settings = load_settings()
    files = RangeFiles(settings, key)
    report = json.loads(files.report_path.read_text())

    # the same report as `liq backtest` over the same range (run_backtest), but for the seconds
    start, end = files.plan().from_block, files.plan().to_block
    with RpcClient(chain.node.url) as rpc:
        direct = run_backtest(rpc, settings, plan_range(rpc, settings, start, end)).report
    assert {k: v for k, v in report.items() if k != "seconds"} == {k: v for k, v in direct.items() if k != "seconds"}
    assert report["crossings"] > 0 and report["recall_at_cross"] == 1.0
    assert report["liquidations_onchain"] > 0  # the competitor liquidated after the shock
    assert (files.root / "report.md").read_text().startswith(f"# Backtest of blocks {report['graded_from_block']}")

    # headline figures as numbers; the plots as PNG images in Markdown metadata, equal to the files written
    metadata = _report_metadata(result)
    for name in HEADLINE:
        assert metadata[name].value == report[name], name
    assert isinstance(metadata["recall_at_cross"], dg.FloatMetadataValue)
    assert isinstance(metadata["liquidations_onchain"], dg.IntMetadataValue)
    PLOTS_OUT.mkdir(exist_ok=True)
    for name in plots.PLOTS:
        png = _png_of(metadata[f"plot_{name}"].value)
        assert png.startswith(PNG) and len(png) > 10_000, name
        assert (files.root / "plots" / f"{name}.png").read_bytes() == png
        (PLOTS_OUT / f"{name}.png").write_bytes(png)
    crossings_metadata = result.asset_materializations_for_node("crossings")[0].metadata
    assert crossings_metadata["crossings"].value == report["crossings"]

    # the histogram's data: one lead time per crossing; its median is the report's
    truth, predicted = files.truth(files.plan()), files.predictions(files.plan())
    leads = grading.crossing_leads(
        truth,
        files.frame("replay_blocks"),
        predicted,
        price_moves(files.frame("replay_prices")),
        Window(report["graded_from_block"], report["to_block"], 20.0),
        report["engine"]["scenarios"],
    )
    overall = leads.filter(pl.col("scenario") == plots.OVERALL)
    assert overall.height == report["crossings"]
    assert overall["lead_s"].median() == report["lead_time_p50_s"]

    # checks: all pass on this report (floors 0), each with its severity
    checks = _checks(result)
    assert set(checks) == {CHECK_RECALL, CHECK_PRECISION, CHECK_LEAD_TIME}
    assert all(c.passed for c in checks.values())
    assert checks[CHECK_RECALL].severity == dg.AssetCheckSeverity.ERROR
    assert checks[CHECK_PRECISION].severity == checks[CHECK_LEAD_TIME].severity == dg.AssetCheckSeverity.WARN


@pytest.mark.integration
def test_the_checks_fail_on_a_bad_report(chain, backtest_env, instance, monkeypatch):
    key = _shocked_range(chain)
    assert _materialize(instance, key).success
    settings = load_settings()
    files = RangeFiles(settings, key)
    plan = files.plan()

    # floors above what the engine does: the WARN checks fail, the run succeeds
    monkeypatch.setenv("BACKTEST_MIN_PRECISION", "1.0")
    monkeypatch.setenv("BACKTEST_MIN_LEAD_TIME_S", "3600")
    warned = _materialize(instance, key, [backtest_report])
    assert warned.success
    checks = _checks(warned)
    assert checks[CHECK_RECALL].passed
    assert not checks[CHECK_PRECISION].passed and checks[CHECK_PRECISION].severity == dg.AssetCheckSeverity.WARN
    assert not checks[CHECK_LEAD_TIME].passed and checks[CHECK_LEAD_TIME].severity == dg.AssetCheckSeverity.WARN
    assert checks[CHECK_PRECISION].metadata["floor"].value == 1.0

    # predictions doctored: nobody flagged at their crossing block -> recall < 1: the blocking ERROR check fails
    crossed = files.frame("crossings").select("block", "user")
    doctored = files.predictions(plan).join(crossed, on=["block", "user"], how="anti")
    write_frames(files.lake, PREDICTIONS, doctored, plan.replay_from, plan.to_block)
    failed = _materialize(instance, key, [backtest_report])
    assert not failed.success  # blocking: the run fails (run_failure_alerts tells)
    recall = _checks(failed)[CHECK_RECALL]
    assert not recall.passed and recall.severity == dg.AssetCheckSeverity.ERROR
    assert recall.metadata["recall_at_cross"].value == 0.0
    assert json.loads(files.report_path.read_text())["recall_at_cross"] == 0.0


GOOD = {
    "crossings": 10,
    "recall_at_cross": 1.0,
    "flagged_ahead_share": 0.8,
    "precision_within_horizon": 0.2,
    "base_rate_within_horizon": 0.04,
    "flags_judged": 100,
    "lead_time_p50_s": 30.0,
    "scenarios": {"baseline": {"recall_at_cross": 1.0}},
}


def test_the_checks_judge_the_report_against_the_floors():
    assert recall_check(GOOD).passed and precision_check(GOOD, 0.1).passed and lead_time_check(GOOD, 10).passed
    missed = recall_check({**GOOD, "recall_at_cross": 0.9})
    assert not missed.passed and missed.severity == dg.AssetCheckSeverity.ERROR
    imprecise = precision_check({**GOOD, "precision_within_horizon": 0.05}, 0.1)
    assert not imprecise.passed and imprecise.severity == dg.AssetCheckSeverity.WARN
    late = lead_time_check({**GOOD, "lead_time_p50_s": 4.0}, 10)
    assert not late.passed and late.severity == dg.AssetCheckSeverity.WARN
    # nothing to measure: passes, and says so
    empty = {**GOOD, "crossings": 0, "recall_at_cross": None, "precision_within_horizon": None, "lead_time_p50_s": None}
    for check in (recall_check(empty), precision_check(empty, 0.1), lead_time_check(empty, 10)):
        assert check.passed and check.metadata["note"].value


def test_the_plots_render_an_empty_report():
    report = {"graded_from_block": 1, "to_block": 2, "calibration": [], "scenarios": {"baseline": {}}}
    leads = pl.DataFrame(schema={"scenario": pl.String, "lead_s": pl.Float64})
    candidates = pl.DataFrame(schema={"scenario": pl.String, "block": pl.Int64, "users": pl.Int64})
    for name, png in plots.render_all(report, leads, candidates).items():
        assert png.startswith(PNG), name


def test_the_schedule_asks_for_final_ranges_without_a_report(tmp_path, clean_env, monkeypatch):
    from liq_pipeline.lake.open import lake_at

    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    settings = load_settings()
    lake = lake_at(tmp_path / "lake", range_size=100)
    done = "000000000900-000000000999"
    RangeFiles(settings, done).write_report({}, "", {})
    keys = ["000000001100-000000001199", done, "000000001000-000000001099", "000000000800-000000000899"]
    # 800-899 ends before the first block with state (950): nothing to grade there
    assert ranges_to_backtest(lake, keys, 1_150, 10, 950, settings) == ["000000001000-000000001099"]
    assert ranges_to_backtest(lake, keys, 1_300, 10, 950, settings) == [
        "000000001000-000000001099",
        "000000001100-000000001199",
    ]


def test_registered_in_the_code_location():
    from liq_pipeline.definitions import defs

    assert defs.get_assets_def("backtest_report").check_keys == {
        dg.AssetCheckKey(dg.AssetKey("backtest_report"), name)
        for name in (CHECK_RECALL, CHECK_PRECISION, CHECK_LEAD_TIME)
    }
    assert defs.resolve_job_def("backtest_ranges").name == "backtest_ranges"
    assert defs.get_schedule_def("backtest_finished_ranges").default_status == dg.DefaultScheduleStatus.STOPPED
    for name in ("crossings", "predictions", "backtest_report"):
        assert defs.get_assets_def(name).partitions_def.name == BLOCK_RANGES
