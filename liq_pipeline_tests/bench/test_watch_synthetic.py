"""`liq bench-watch --synthetic`: the watcher on generated blocks (no node), its JSON, and the seam it feeds."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from liq_pipeline.bench.synthetic_watch import BlockGenerator, SyntheticTracker, run_bench_watch_synthetic
from liq_pipeline.commands.cli import app
from liq_pipeline.config import Settings
from liq_pipeline.risk.book import build_book
from liq_pipeline.risk.engine import evaluate
from liq_pipeline.risk.params import EngineParams
from liq_pipeline.risk.scenarios import default_specs
from liq_pipeline.risk.synthetic import sample

from .contract import assert_report


def test_synthetic_watch_bench_small(clean_env):
    settings = Settings(data_dir=clean_env / "data")
    result = run_bench_watch_synthetic(settings, users=2_000, blocks=5, seed=1)
    params = {
        "users": 2_000,
        "blocks": 5,
        "seed": 1,
        "shocks": True,
        "vol_scale": 1.0,
        "touched": 300.0,
        "version": "3.0",
    }
    assert_report(result, "watch_synthetic", params)
    assert result["users"] == 2_000 and result["users_tracked"] >= 2_000  # newcomers arrive
    assert result["blocks"] == 5
    assert result["last_block"] == 1_000_000 + 6  # the sample market's block, the warm-up block, five measured
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert set(result["phases_p50_ms"]) == {"read", "evaluate", "write"}
    assert all(value >= 0 for value in result["phases_p50_ms"].values())
    assert set(result["p50_ms_by_kind"]) <= {"carried", "evaluated"} and result["p50_ms_by_kind"]
    assert 0 <= result["carried_blocks"] <= 5
    assert 100 <= result["touched_per_block_mean"] <= 500  # Poisson, mean 300
    assert result["price_updates"] >= 0 and 0 <= result["shocks"] <= 5
    # the slowest block's latency is rounded to 0.1 ms from the raw value, max_ms to 0.01: 41.949 gives 41.9 and 41.95
    assert len(result["slowest"]) == 3 and abs(result["slowest"][0]["latency_ms"] - result["max_ms"]) <= 0.05 + 1e-9
    # real Redis writes: the server holds the last block's candidates
    assert result["redis_candidates_block"] == result["last_block"]
    assert result["redis_candidates"] == sum(result["candidates_last_block"].values()) > 0
    assert result["redis_used_memory_mb"] > 0
    # the watcher's metrics, fed every block: their cost against the block's (a figure, not a bound)
    assert result["metrics_observe_ms_p50"] > 0 and result["metrics_scrape_ms"] > 0
    ratio = result["metrics_observe_ms_p50"] / result["p50_ms"]  # both rounded in the JSON
    assert result["metrics_observe_vs_block_p50"] == pytest.approx(ratio, rel=0.05)
    hot = result["hot_state_bytes"]
    assert set(hot) == {"book_arrays", "exact_frame", "user_index", "evaluation_arrays", "writer_arrays"}
    assert all(value > 0 for value in hot.values())
    assert result["hot_state_bytes_per_borrower"] == round(sum(hot.values()) / result["users_tracked"])
    # at least the book's float mirrors: 6 users x reserves matrices (2 of them float32) over ten reserves
    assert result["hot_state_bytes_per_borrower"] >= 10 * (4 * 8 + 2 * 4)
    assert result["rss_bytes_per_borrower"] > 0
    assert result["generate_block_ms_p50"] > 0 and result["warmup_s"] > 0


def test_generated_blocks_reach_the_book_as_a_node_read_would():
    """After generated blocks, the tracker's book (updated in place, row by row) equals a book built afresh from
    its positions, those positions hold the generated rows of the last block, and the evaluation of the last
    block equals evaluating the rebuilt book."""
    generated = sample(600, seed=5)
    market = generated.market
    tracker = SyntheticTracker(None, market, market.rules, generated.positions, market.block)
    generator = BlockGenerator(market, generated.positions, seed=5, touched=40.0, vol_scale=10.0, shocks=True)
    params = EngineParams(default_specs(["baseline", "adverse", "extreme"]), horizon_sec=180, hf_buffer_bps=40)
    result = None
    for _ in range(6):
        tracker.pending = block = generator.next_block(tracker.positions)
        delta = tracker.advance(block.number)
        assert delta.touched_users == block.touched and delta.header["parentHash"] == f"0x{block.number - 1:064x}"
        result, record = tracker.evaluate(params)
        assert record.block == block.number and tracker.market_state() is block.state
    assert tracker.users > 600  # newcomers
    book = tracker._book
    rebuilt = build_book(book.positions, block.state)
    for name in ("coll", "weighted", "debt", "holds", "owes", "lt_min"):
        np.testing.assert_array_equal(getattr(book, name), getattr(rebuilt, name), err_msg=name)
    last = block.fresh.sort("user")
    held = tracker.positions.filter(pl.col("user").is_in(last["user"].to_list())).sort("user")
    assert held.equals(last.select(held.columns))
    afresh = evaluate(rebuilt, block.state, params, tracker.trends())
    np.testing.assert_array_equal(np.asarray(result.hf_current < 1.0), np.asarray(afresh.hf_current < 1.0))
    assert result.candidates_per_scenario() == afresh.candidates_per_scenario()


@pytest.mark.parametrize("shocks", [False, True])
def test_generated_prices_move_at_the_devnet_pace(shocks):
    """Feeds publish on a 5 bps deviation: at real volatility most blocks move no price; shocks only when asked."""
    generated = sample(50, seed=2)
    generator = BlockGenerator(generated.market, generated.positions, seed=2, touched=0.0, vol_scale=1.0, shocks=shocks)
    blocks = [generator.next_block(generated.positions) for _ in range(300)]
    moved = sum(b.price_updates > 0 for b in blocks)
    assert 0 < moved < 300
    assert all(b.touched == [] for b in blocks)
    assert blocks[-1].state.timestamp - generated.market.timestamp == 600  # 2 s blocks
    if not shocks:
        assert not any(b.shock for b in blocks)


def test_synthetic_watch_command_prints_one_json_object(clean_env):
    argv = ["bench-watch", "--synthetic", "--users", "1500", "--blocks", "3", "--no-shocks", "--protocol", "3.6"]
    result = CliRunner().invoke(app, [*argv, "--touched", "50", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["bench"] == "watch_synthetic" and report["protocol"] == "3.6" and report["blocks"] == 3
    assert report["params"]["shocks"] is False and report["shocks"] == 0 and report["params"]["touched"] == 50.0
