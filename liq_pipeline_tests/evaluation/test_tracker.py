"""The block-by-block tracker on the real market: incremental state equals a fresh read, every block."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from liq_pipeline.chain.ground_truth import user_account_data
from liq_pipeline.chain.positions import read_positions
from liq_pipeline.chain.rpc import RpcClient
from liq_pipeline.devnet import actions
from liq_pipeline.evaluation.tracker import Tracker
from liq_pipeline.risk.params import EngineParams
from liq_pipeline.risk.scenarios import default_specs
from liq_pipeline.risk.versions import rules_for

pytestmark = pytest.mark.integration
RULES = rules_for("3.0")
PARAMS = EngineParams(default_specs(["baseline", "adverse", "extreme"]))


@pytest.fixture
def tracker(chain):
    with RpcClient(chain.node.url) as rpc:
        head = int(rpc.call("eth_blockNumber"), 16)
        yield Tracker.bootstrap(
            rpc,
            chain.market.addresses_provider,
            RULES,
            0,
            head,
            ("USDC", "DAI", "USDT"),
        )


def test_bootstrap_finds_every_seeded_borrower(chain, tracker):
    assert set(chain.users) <= set(tracker.positions["user"].to_list())


def test_advance_rereads_only_touched_users_and_matches_a_fresh_read(chain, tracker):
    prices = actions.oracle_prices(chain.rpc, chain.market)
    actions.set_prices(chain.rpc, chain.market, {s: p * 85 // 100 for s, p in prices.items() if s in ("WETH", "WBTC")})
    tracker.advance(int(tracker.rpc.call("eth_blockNumber"), 16))
    result, _ = tracker.evaluate(PARAMS)
    victims = result.users.filter(pl.col("hf_current") < 1.0)["user"].to_list()
    assert victims
    actions.liquidate(chain.rpc, chain.market, victims[0])
    actions.advance_time(chain.rpc, 3_600)
    head = int(tracker.rpc.call("eth_blockNumber"), 16)
    delta = tracker.advance(head)
    assert victims[0] in delta.touched_users
    assert delta.liquidations.height == 1
    assert len(delta.touched_users) < tracker.users  # not a full re-read
    fresh = read_positions(tracker.rpc, tracker.market, tracker.positions["user"].to_list(), head, RULES)
    assert_frame_equal(tracker.positions, fresh.select(tracker.positions.columns))

    result, record = tracker.evaluate(PARAMS)
    assert record.block == head and record.users == tracker.users
    truth = user_account_data(tracker.rpc, tracker.market.pool, result.users["user"].to_list(), head)
    for user, hf in result.users.select("user", "hf_current").iter_rows():
        assert (hf < 1.0) == (truth[user].health_factor < 10**18)
    assert record.candidates.get("extreme", 0) >= record.candidates.get("baseline", 0)


def test_price_window_grows_with_evaluated_blocks(chain, tracker):
    tracker.evaluate(PARAMS)
    prices = actions.oracle_prices(chain.rpc, chain.market)
    for step in range(3):
        actions.set_prices(chain.rpc, chain.market, {"WETH": prices["WETH"] * (100 - step) // 100})
        delta = tracker.advance(int(tracker.rpc.call("eth_blockNumber"), 16))
        assert delta.price_updates == 1  # the feed's AnswerUpdated, found through the oracle's sources
        tracker.evaluate(PARAMS)
    trends = tracker.trends(force=True)
    weth = next(r.reserve_id for r in tracker.market.reserves if r.symbol == "WETH")
    assert trends[weth].drift_per_sec < 0
    assert trends[weth].volatility_per_sqrt_sec is not None
