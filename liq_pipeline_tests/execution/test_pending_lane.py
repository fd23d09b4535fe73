"""The pre-confirmation lane on the real V3.6 devnet: a price update waiting in anvil's pool (seen through its
`newPendingTransactions` stream) makes users liquidatable; the lane prices them at the pending answer, the
executor simulates behind the update and sends with fees under its; the next block holds the update, then our
liquidations, each exactly as planned. Before that block the users are healthy on chain: a bot that reacts to
sealed blocks could only send for the block after it."""

from __future__ import annotations

import threading
import time

import pytest

from liq_pipeline.cache.keys import MarketKeys
from liq_pipeline.chain.pending import MEMPOOL, PendingPriceStream, ws_url_for
from liq_pipeline.chain.rpc import RpcClient
from liq_pipeline.devnet.accounts import OPERATOR, OPERATOR_KEY
from liq_pipeline.devnet.actions import account_data, oracle_prices, price_txs
from liq_pipeline.devnet.anvil import BLOCK_TIME
from liq_pipeline.devnet.dex import deploy_dex
from liq_pipeline.devnet.liquidator import deploy_liquidator, flash_premium_bps, set_flash_premium
from liq_pipeline.devnet.txs import Chain
from liq_pipeline.evaluation.tracker import Tracker
from liq_pipeline.execution.executor import ExecutorConfig, FastPathExecutor, Venue
from liq_pipeline.execution.idempotency import AttemptGuard, NonceLock, execution_client
from liq_pipeline.execution.pending_lane import LaneStats, PendingLane, feeds_of
from liq_pipeline.execution.signer import Signer
from liq_pipeline.risk.versions import rules_for
from liq_pipeline_tests.fixtures.liquidatable import SHOCK

pytestmark = pytest.mark.integration


@pytest.fixture
def lane_net(chain_v36, redis_server):
    """The V3.6 devnet with users one price move from liquidation (not below 1 yet), the DEX, the Liquidator, a
    tracker at the head and a live executor; automine off as on a real chain."""
    from liq_pipeline.devnet.v36.seed import UserPlan, seed_examples

    net = chain_v36
    net.rpc.call("anvil_dropAllTransactions")
    plans = (
        UserPlan("lane-half", supplies={"WETH": "10"}, borrows={"USDC": "20500"}),
        UserPlan("lane-full", supplies={"WETH": "3", "WBTC": "0.05"}, borrows={"DAI": "8500"}),
        UserPlan("lane-wbtc", supplies={"WBTC": "0.2"}, borrows={"USDC": "11600"}),
    )
    users = list(seed_examples(net.rpc, net.deployment, plans).values())[1:]
    dex = deploy_dex(net.rpc, net.market)
    set_flash_premium(net.rpc, net.market, 5)
    deployed = deploy_liquidator(net.rpc, net.market, net.data_dir, OPERATOR)
    assert all(d.health_factor >= 10**18 for d in account_data(net.rpc, net.market.pool, users))
    ids = {r.asset.lower(): r.reserve_id for r in net.market.reserves}
    venue = Venue(
        liquidator=deployed.address,
        operator=OPERATOR,
        pairs={(ids[p.token0.lower()], ids[p.token1.lower()]): p.pair for p in dex.pairs},
        compact=True,
        flash_premium_bps=flash_premium_bps(net.rpc, net.market),
        eth_reserve_id=net.market.by_symbol["WETH"].reserve_id,
    )
    reader = RpcClient(net.node.url)
    head = reader.quantity("eth_blockNumber")
    tracker = Tracker.bootstrap(reader, net.market.addresses_provider, rules_for("3.6"), 0, head, known_users=users)
    client = execution_client(redis_server.url, timeout=0.5)
    executor = FastPathExecutor(
        reader,
        MarketKeys.for_market(net.market.chain_id, "0x" + "5e" * 20),
        venue,
        AttemptGuard(client, 30, owner="lane-test"),
        ExecutorConfig(live=True, min_profit_usd=1.0),
        signer=Signer.from_private_key(OPERATOR_KEY, net.market.chain_id),
        nonce_lock=NonceLock(client, net.market.chain_id, OPERATOR),
    )
    net.rpc.call("evm_setAutomine", False)
    try:
        yield net, tracker, executor, users
    finally:
        net.rpc.call("anvil_dropAllTransactions")
        net.rpc.call("evm_setAutomine", True)
        reader.close()


def test_a_pending_price_update_is_liquidated_behind_in_its_own_block(lane_net):
    """Simulated on the node's pending state (Flashblocks; the paced devnet; `liq arena`). Behind the update's own
    call on the latest state (a mempool): `test_execute_command.py`'s pending case, through `liq execute`."""
    net, tracker, executor, users = lane_net
    market = net.market
    assert set(feeds_of(tracker)) == {r.aggregator.lower() for r in market.reserves}
    decided = []  # the lane's attempts as it made them (executor.attempts holds final outcomes)
    lane = PendingLane(executor, tracker, threading.RLock(), decided.append, pending_state=True).start()
    stream = PendingPriceStream(ws_url_for(net.node.url), MEMPOOL, lane.feeds, lane.submit)
    assert stream.start(), "not subscribed within 5 s"
    chain = Chain(net.rpc)
    try:
        prices = oracle_prices(net.rpc, market)
        head = chain.block_number()
        updates = chain.send(price_txs(market, {s: int(prices[s] * f) for s, f in SHOCK.items() if s in prices}))
        deadline = time.monotonic() + 10
        while not any(a.tx_hash for a in decided) and time.monotonic() < deadline:
            with lane.acted:
                lane.acted.wait(0.05)
        time.sleep(0.2)  # every update of the move acted on (they come one by one)
        assert chain.block_number() == head  # nothing mined yet: the users are still healthy on chain
        assert all(d.health_factor >= 10**18 for d in account_data(net.rpc, market.pool, users))
    finally:
        stream.stop()
        lane.stop()
    sent = [a for a in decided if a.tx_hash]
    assert sent, [(a.outcome, a.reason) for a in decided]
    assert {a.trigger for a in sent} == {"pending"}
    assert all(a.block_seen == head for a in sent)
    assert all(0 <= a.sent_at - a.seen_at < 2.0 for a in sent)
    number = chain.mine(chain.latest_timestamp() + BLOCK_TIME)
    order = net.rpc.call("eth_getBlockByNumber", hex(number), False)["transactions"]
    ours = [order.index(a.tx_hash) for a in sent]
    assert max(order.index(h) for h in updates) < min(ours), "our liquidations land behind the price update"
    # the block after: followed to included, every amount as planned (the simulation behind the update)
    tracker.advance(number)
    executor.on_block(tracker.market_state(), [], time.time())
    done = [a for a in executor.attempts if a.tx_hash and a.outcome != "sent"]
    assert [a.outcome for a in done] == ["included"] * len(sent)
    assert executor.mismatches == []
    for attempt in done:
        assert attempt.realized_profit_usd == pytest.approx(attempt.expected_profit_usd, rel=0.01)
    assert lane.stats.users_below >= len(sent)


def test_fees_stay_under_the_update_they_must_land_behind():
    from liq_pipeline.execution.executor import _under
    from liq_pipeline.execution.gas_ladder import Fees

    assert _under(Fees(100, 40), Fees(50, 10)) == Fees(49, 9)
    assert _under(Fees(30, 5), Fees(50, 10)) == Fees(30, 5)  # already under: unchanged
    assert _under(Fees(100, 90), Fees(50, 60)) == Fees(49, 49)  # the tip never above the max fee


def test_lane_stats_report_the_wait_the_wave_and_its_cost_per_transaction():
    """The figures `liq arena` reports of the lane: how long an update waited for the watcher's lock, how many
    transactions an act sent, and what verifying and sending cost per transaction of a wave."""
    stats = LaneStats()
    for waited, stages, sent in ((3.0, {"verify": 8.0, "send": 2.0}, 2), (5.0, {"verify": 30.0, "send": 9.0}, 10)):
        stats.waited_ms.append(waited)
        stats.sends.append((stages, sent))
    summary = stats.summary()
    assert summary["seen_to_lock_p50_ms"] == 5.0 and summary["seen_to_lock_max_ms"] == 5.0
    assert summary["sent_per_act_p50"] == 10 and summary["sent_per_act_max"] == 10
    assert summary["stages_per_sent_p50_ms"] == {"verify": 4.0, "send": 1.0}  # 8/2 and 30/10; 2/2 and 9/10
    assert summary["stages_max_ms"] == {"send": 9.0, "verify": 30.0}
    assert LaneStats().summary()["sent_per_act_p50"] is None
