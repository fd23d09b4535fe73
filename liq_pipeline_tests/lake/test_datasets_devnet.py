"""Every dataset built over ranges of the real devnet (anvil + Aave V3, 200 borrowers), checked against what the
chain says through other paths: the reader's market state, the Pool's own account data, block headers."""

from __future__ import annotations

import polars as pl
import pytest

from liq_pipeline.chain.discovery import read_market_state
from liq_pipeline.chain.events import fetch_events
from liq_pipeline.devnet import actions
from liq_pipeline.lake.backfill import materialize_range
from liq_pipeline.lake.datasets.borrower_snapshots import build_borrower_snapshots, known_users_before
from liq_pipeline.lake.datasets.pool_events import SCHEMA as EVENTS_SCHEMA
from liq_pipeline.lake.datasets.pool_events import build_pool_events
from liq_pipeline.lake.datasets.price_histories import SCHEMA as PRICES_SCHEMA
from liq_pipeline.lake.datasets.reserve_indices import SCHEMA as RESERVES_SCHEMA
from liq_pipeline.lake.errors import DatasetError

pytestmark = pytest.mark.integration


def test_pool_events_hold_every_event_of_the_range_with_block_timestamps(history):
    events = history.lake.read("pool_events", history.b)
    assert events.schema == pl.Schema(EVENTS_SCHEMA)
    direct = fetch_events(history.rpc, history.market, history.b.start, history.b.end)
    assert events.height == direct.height > 0
    assert events["block_number"].is_between(history.b.start, history.b.end).all()
    calls = events.filter(pl.col("event") == "LiquidationCall")
    assert calls.select("block_number", "user").rows() == [(history.liquidation_block, history.victim)]
    header = history.rpc.call("eth_getBlockByNumber", hex(history.liquidation_block), False)
    assert calls["block_timestamp"][0] == int(header["timestamp"], 16)
    assert events["block_timestamp"].null_count() == 0
    seeded = history.lake.scan("pool_events", 0, history.a.start - 1, complete=True).collect()
    assert {"Supply", "Borrow", "ReserveDataUpdated"} <= set(seeded["event"].unique())


def test_reserve_indices_have_the_state_at_the_last_block_and_every_update(history):
    frame = history.lake.read("reserve_indices", history.b)
    assert frame.schema == pl.Schema(RESERVES_SCHEMA)
    state = frame.filter(pl.col("source") == "state")
    truth = read_market_state(history.rpc, history.market, history.b.end, history.rules)
    assert state.height == len(truth.reserves) == len(history.market.reserves)
    assert (state["block_number"] == history.b.end).all()
    for row in state.iter_rows(named=True):
        reserve = truth.by_id[row["reserve_id"]]
        assert row["liquidity_index"] == reserve.liquidity_index
        assert row["variable_borrow_index"] == reserve.variable_borrow_index
        assert row["variable_borrow_rate"] == reserve.variable_borrow_rate
        assert row["last_update_timestamp"] == reserve.last_update_timestamp
        assert (row["ltv"], row["liquidation_threshold"], row["liquidation_bonus"], row["decimals"]) == (
            reserve.ltv,
            reserve.liquidation_threshold,
            reserve.liquidation_bonus,
            reserve.decimals,
        )
    stable_members = {r["symbol"] for r in state.iter_rows(named=True) if 1 in r["emode_categories"]}
    assert stable_members == {"USDC", "DAI"}  # the devnet's Stablecoins e-mode category

    updates = frame.filter(pl.col("source") == "event")
    events = history.lake.read("pool_events", history.b).filter(pl.col("event") == "ReserveDataUpdated")
    assert updates.height == events.height >= 2  # the liquidation updates its debt and collateral reserves
    assert (updates["block_number"] == history.liquidation_block).all()
    # the last update of a reserve in the range is the state the Pool still holds at the range's end
    latest = updates.sort("block_number", "log_index").group_by("reserve_id").last()
    for row in latest.iter_rows(named=True):
        held = truth.by_id[row["reserve_id"]]
        assert row["last_update_timestamp"] == held.last_update_timestamp
        assert (row["liquidity_index"], row["variable_borrow_index"]) == (
            held.liquidity_index,
            held.variable_borrow_index,
        )
    assert updates["ltv"].null_count() == updates.height  # events carry no configuration


def test_price_histories_have_every_block_and_the_feed_updates(history):
    for block_range in (history.a, history.b):
        frame = history.lake.read("price_histories", block_range)
        assert frame.schema == pl.Schema(PRICES_SCHEMA)
        oracle = frame.filter(pl.col("source") == "oracle")
        continuity = oracle.group_by("asset").agg(
            pl.len().alias("count"), pl.col("block_number").min().alias("low"), pl.col("block_number").max()
        )
        assert continuity.height == len(history.market.reserves)
        for row in continuity.iter_rows(named=True):
            assert row["count"] == row["block_number"] - row["low"] + 1 == block_range.size
            assert row["low"] == block_range.start
    prices_b = history.lake.read("price_histories", history.b).filter(pl.col("source") == "oracle")
    weth = dict(prices_b.filter(pl.col("symbol") == "WETH").select("block_number", "price").iter_rows())
    before = history.prices_before_shock["WETH"]
    assert weth[history.shock_block - 1] == before
    assert weth[history.shock_block] == weth[history.b.end] == before * 70 // 100
    feeds_a = history.lake.read("price_histories", history.a).filter(pl.col("source") == "feed")
    assert feeds_a.select("block_number", "symbol").rows() == [(history.weth_move_block, "WETH")]
    feeds_b = history.lake.read("price_histories", history.b).filter(pl.col("source") == "feed")
    assert sorted(feeds_b["symbol"]) == ["AERO", "WBTC", "WETH"]
    assert (feeds_b["block_number"] == history.shock_block).all()
    shocked = dict(feeds_b.select("symbol", "price").iter_rows())
    assert shocked["WETH"] == weth[history.shock_block]  # the devnet oracle passes its feed through


def test_borrower_snapshots_hold_every_position_the_pool_knows(history):
    snapshot = history.lake.read("borrower_snapshots", history.b)
    assert (snapshot["block_number"] == history.b.end).all()
    users = sorted(history.devnet.users)
    truth = actions.account_data(history.devnet.rpc, history.market.pool, users, history.b.end)
    with_position = {u for u, d in zip(users, truth, strict=True) if d.total_collateral_base or d.total_debt_base}
    held = set(snapshot["user"])
    assert with_position <= held and len(with_position) >= 150
    indebted = {u for u, d in zip(users, truth, strict=True) if d.total_debt_base}
    assert indebted == set(snapshot.filter(pl.col("scaled_variable_debt") > 0)["user"]) & set(users)

    # the liquidation repaid part of the victim's debt between the end of A and the end of B
    def debt(frame: pl.DataFrame) -> int:
        return frame.filter(pl.col("user") == history.victim)["scaled_variable_debt"].sum()

    assert debt(snapshot) < debt(history.lake.read("borrower_snapshots", history.a))


def test_a_range_reveals_its_own_new_users_without_any_known_user(history):
    own = build_borrower_snapshots(history.rpc, history.market, history.rules, history.b.start, history.b.end)
    assert history.victim in set(own["user"])  # named by B's LiquidationCall
    assert set(own["user"]) < set(history.lake.read("borrower_snapshots", history.b)["user"])
    known = known_users_before(history.lake, history.b.start)
    assert set(history.devnet.users) <= set(known)


def test_rebuilding_a_range_gives_identical_frames_and_files(history, fresh_lake):
    for block_range in (history.a, history.b):
        for earlier in fresh_lake.missing("pool_events", 0, block_range.start - 1):
            materialize_range(fresh_lake, history.rpc, history.market, history.rules, earlier, ("pool_events",))
        materialize_range(fresh_lake, history.rpc, history.market, history.rules, block_range)
        for dataset in ("pool_events", "reserve_indices", "price_histories", "borrower_snapshots"):
            again, first = fresh_lake.read(dataset, block_range), history.lake.read(dataset, block_range)
            assert again.equals(first), f"{dataset} {block_range} differs when rebuilt"
            same_bytes = fresh_lake.path(dataset, block_range).read_bytes()
            assert same_bytes == history.lake.path(dataset, block_range).read_bytes(), dataset


def test_a_range_the_node_has_not_finished_is_refused(history):
    beyond = history.b.end + 100
    with pytest.raises(DatasetError, match=rf"pool_events: .*no such block.*\[block {beyond}\]"):
        build_pool_events(history.rpc, history.market, history.rules, history.b.end + 1, beyond)
