"""The FastPathExecutor under faults, on the real V3.6 devnet (the real Pool, Liquidator and Uniswap V2 pairs), real
Redis, the devnet operator's key:

- the node goes away between verification and the send (a real TCP relay in front of anvil, cut at the send): an
  unanswered send keeps its claim and is followed by its hash, never sent again; dropped if the node never got it;
  a send the node refuses is given back;
- Redis hung or down during a block: no send without a claim, no wait past the client's timeout, one log line when
  the outage starts and one when it ends;
- the operator's nonce taken by a transaction sent outside the executor, before and after its send;
- a competitor's liquidation of the same user landing first in the same block.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import signal
import time

import pytest

from liq_pipeline.cache.keys import MarketKeys
from liq_pipeline.chain.discovery import discover_market, read_market_state
from liq_pipeline.chain.positions import read_positions
from liq_pipeline.chain.rpc import RpcClient
from liq_pipeline.devnet.accounts import COMPETITOR, GAS_MONEY, OPERATOR, OPERATOR_KEY
from liq_pipeline.devnet.actions import MAX_UINT, LiquidationPick, liquidation_txs
from liq_pipeline.devnet.anvil import BLOCK_TIME
from liq_pipeline.devnet.liquidator import flash_premium_bps, fund_inventory
from liq_pipeline.devnet.txs import Chain
from liq_pipeline.execution.executor import ANY_ASSET, ExecutorConfig, FastPathExecutor, Venue
from liq_pipeline.execution.idempotency import AttemptGuard, NonceLock, Opportunity, execution_client, outage_of
from liq_pipeline.execution.signer import Signer
from liq_pipeline.risk.exact import account_data
from liq_pipeline.risk.market import user_positions
from liq_pipeline.risk.versions import rules_for
from liq_pipeline_tests.fixtures.rpc_relay import rpc_relay

pytestmark = pytest.mark.integration

_pools = itertools.count(0x7000)


@pytest.fixture
def armed(chain_v36, make_liquidatable, redis_server):
    """The V3.6 devnet after a price move left three users below HF 1 (automine off), its DEX and the Liquidator."""
    from liq_pipeline.devnet.v36.seed import UserPlan, seed_examples

    net = chain_v36
    plans = (
        UserPlan("faults-half", supplies={"WETH": "10"}, borrows={"USDC": "20500"}),
        UserPlan("faults-full", supplies={"WETH": "3", "WBTC": "0.05"}, borrows={"DAI": "9500"}),  # HF 0.94 after
        UserPlan("faults-wbtc", supplies={"WBTC": "0.2"}, borrows={"USDC": "13500"}),
    )
    armed = make_liquidatable(net, list(seed_examples(net.rpc, net.deployment, plans).values()))
    assert len(armed.below) == 3
    ids = {r.asset.lower(): r.reserve_id for r in net.market.reserves}
    venue = Venue(
        liquidator=armed.liquidator,
        operator=OPERATOR,
        pairs={(ids[p.token0.lower()], ids[p.token1.lower()]): p.pair for p in armed.dex.pairs},
        compact=True,
        flash_premium_bps=flash_premium_bps(net.rpc, net.market),
        eth_reserve_id=net.market.by_symbol["WETH"].reserve_id,
    )
    return net, venue, armed.below, redis_server.url


def _view(net, users):
    """The market and `users`' positions at the head, read as the watcher does."""
    rules = rules_for(net.market.protocol_version)
    head = net.rpc.quantity("eth_blockNumber")
    market = discover_market(net.rpc, net.market.addresses_provider, head, rules)
    state = read_market_state(net.rpc, market, head, rules)
    return state, user_positions(read_positions(net.rpc, market, users, head, rules), state.reserve_ids)


def _executor(
    net, venue, rpc, redis_url, *, timeout: float = 0.5, live: bool = True, max_per_block: int = 256
) -> FastPathExecutor:
    client = execution_client(redis_url, timeout=timeout)
    return FastPathExecutor(
        rpc,
        MarketKeys.for_market(net.market.chain_id, f"0x{next(_pools):040x}"),  # a fresh market: fresh claims
        venue,
        AttemptGuard(client, 30, owner="faults"),
        ExecutorConfig(live=live, min_profit_usd=1.0, max_per_block=max_per_block),
        signer=Signer.from_private_key(OPERATOR_KEY, net.market.chain_id),
        nonce_lock=NonceLock(client, net.market.chain_id, OPERATOR),
    )


def _claimed(executor: FastPathExecutor, user: str) -> bool:
    return bool(executor.guard.client.exists(Opportunity(executor.market, user, ANY_ASSET, ANY_ASSET).key))


def _mine(net) -> int:
    chain = Chain(net.rpc)
    return chain.mine(chain.latest_timestamp() + BLOCK_TIME)


def _pending(net) -> int:
    return int(net.rpc.call("txpool_status")["pending"], 16)


def _nonce(net, tag: str = "latest") -> int:
    return net.rpc.quantity("eth_getTransactionCount", OPERATOR, tag)


def _sent(attempts) -> list:
    return [a for a in attempts if a.outcome == "sent"]


# --- 1. the node goes away mid-send ----------------------------------------------------------------------------------
def test_a_send_whose_answer_is_lost_is_followed_by_its_hash_and_never_sent_again(armed, caplog):
    net, venue, below, redis_url = armed
    caplog.set_level(logging.WARNING, logger="liq_pipeline.execution.executor")
    with rpc_relay(net.node.url) as relay, RpcClient(relay.url, timeout=5, retries=1, backoff=0.01) as rpc:
        executor = _executor(net, venue, rpc, redis_url)
        state, positions = _view(net, below)
        relay.cut_at(b"eth_sendRawTransaction", deliver=True)  # the node takes the batch; its answer never comes
        sent = _sent(executor.on_block(state, positions, time.time()))
        assert relay.tripped.is_set()
        assert sent and all(a.tx_hash and "answer lost" in a.reason for a in sent), sent
        assert _pending(net) == len(sent)  # the node has them
        assert len(executor.in_flight) == len(sent) and all(_claimed(executor, a.user) for a in sent)
        assert executor.on_block(state, positions, time.time()) == []  # still down: nothing sent, nothing lost
        relay.up()
        assert _sent(executor.on_block(state, positions, time.time())) == []  # back: in flight, not sent again
        assert _pending(net) == len(sent) and len(executor.in_flight) == len(sent)
        _mine(net)
        state, positions = _view(net, below)
        executor.on_block(state, positions, time.time())
    settled = {a.tx_hash: a.outcome for a in executor.attempts}
    assert [settled.get(a.tx_hash) for a in sent] == ["included"] * len(sent), executor.attempts
    assert _nonce(net) == sent[0].nonce + len(sent)  # one transaction per user landed, no second one
    lines = [r.getMessage() for r in caplog.records]
    assert sum("node unreachable" in m for m in lines) == 1 and sum("node answers again" in m for m in lines) == 1


def test_a_send_the_node_never_got_is_dropped_and_its_user_freed(armed):
    net, venue, below, redis_url = armed
    with rpc_relay(net.node.url) as relay, RpcClient(relay.url, timeout=5, retries=1, backoff=0.01) as rpc:
        executor = _executor(net, venue, rpc, redis_url)
        state, positions = _view(net, below)
        nonce = _nonce(net, "pending")
        relay.cut_at(b"eth_sendRawTransaction", deliver=False)  # the node goes before the batch reaches it
        sent = _sent(executor.on_block(state, positions, time.time()))
        assert relay.tripped.is_set() and sent and _pending(net) == 0
        assert all(_claimed(executor, a.user) for a in sent)  # unknown: the claims stay
        relay.up()
        _mine(net)  # a block without them
        state, positions = _view(net, below)
        again = _sent(executor.on_block(state, positions, time.time()))
    dropped = [a for a in executor.attempts if a.outcome == "dropped"]
    assert sorted(a.tx_hash for a in dropped) == sorted(a.tx_hash for a in sent)
    # freed, then sent for real in the same block, at the nonces the lost ones never used
    assert {a.user for a in again} == {a.user for a in sent}
    assert sorted(a.nonce for a in again) == list(range(nonce, nonce + len(again)))
    assert _pending(net) == len(again)


def test_a_send_the_node_refuses_is_given_back(armed, caplog):
    net, venue, below, redis_url = armed
    executor = _executor(net, venue, RpcClient(net.node.url), redis_url)
    state, positions = _view(net, below)
    funded = int(net.rpc.call("eth_getBalance", OPERATOR, "latest"), 16)
    net.rpc.call("anvil_setBalance", OPERATOR, hex(10**9))  # verification passes, the send cannot pay its gas
    with caplog.at_level(logging.WARNING, logger="liq_pipeline.execution.executor"):
        attempts = executor.on_block(state, positions, time.time())
        refused = [a for a in attempts if a.outcome == "skipped" and "send refused" in (a.reason or "")]
        assert refused and not _sent(attempts), attempts
        assert executor.in_flight == {} and _pending(net) == 0
        assert not any(_claimed(executor, a.user) for a in refused)  # given back: the node answered, nothing was sent
        lines = [r.getMessage() for r in caplog.records]
        # the batch in one line, the want of gas money once (a refused wave was one line per transaction)
        assert sum("sends refused" in m for m in lines) == 1, lines
        short = [m for m in lines if "cannot pay for gas" in m]
        assert len(short) == 1 and OPERATOR in short[0], lines
        # still short at the next block: no second warning; funded again: sends resume, said once
        executor.on_block(state, positions, time.time())
        assert sum("cannot pay for gas" in r.getMessage() for r in caplog.records) == 1
        net.rpc.call("anvil_setBalance", OPERATOR, hex(funded))
        assert _sent(executor.on_block(state, positions, time.time()))
        assert sum("pays for gas again" in r.getMessage() for r in caplog.records) == 1


# --- 2. Redis hung or down -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["hung", "down"])
def test_redis_outage_sends_nothing_waits_no_longer_than_the_timeout_and_logs_once(armed, own_server, fault, caplog):
    net, venue, below, _redis_url = armed
    info = own_server.ensure_running()
    timeout = 0.25
    executor = _executor(net, venue, RpcClient(net.node.url), info.url, timeout=timeout)
    assert executor.guard.client.ping()  # connected before the fault
    state, positions = _view(net, below)
    assert len(positions) >= 2
    caplog.set_level(logging.INFO, logger="liq_pipeline.execution")
    if fault == "hung":
        os.kill(info.pid, signal.SIGSTOP)
    else:
        own_server.stop()
    waits = []
    try:
        for _ in range(3):  # three blocks of the outage, several users each
            started = time.perf_counter()
            attempts = executor.on_block(state, positions, time.time())
            elapsed = time.perf_counter() - started
            waits.append(elapsed)
            assert attempts == [] and executor.in_flight == {}
            # one claim's timeout at most, not one per user (three users here)
            assert elapsed < 1.6 * timeout, f"waited {elapsed:.2f} s for Redis"
        # the outage's later blocks do not wait for Redis at all (issue #13: a frozen Redis stalled the watcher)
        assert max(waits[1:]) < 0.2 * timeout, waits
    finally:
        if fault == "hung":
            os.kill(info.pid, signal.SIGCONT)
        else:
            own_server.ensure_running()
    assert _pending(net) == 0 and _nonce(net, "pending") == _nonce(net)
    outage = outage_of(executor.guard.client)  # claims go back to Redis once its background PING hears it
    deadline = time.monotonic() + 5
    while outage.closed and time.monotonic() < deadline:
        time.sleep(0.02)
    sent = _sent(executor.on_block(state, positions, time.time()))  # Redis back: claims, and sends
    assert sent and _pending(net) == len(sent)
    executor.on_block(state, positions, time.time())
    lines = [r.getMessage() for r in caplog.records if r.name == "liq_pipeline.execution.idempotency"]
    assert sum("Redis unreachable" in m for m in lines) == 1, lines
    assert sum("Redis answers again" in m for m in lines) == 1, lines
    assert len(lines) == 2, lines


# --- 3. a nonce taken outside the executor ---------------------------------------------------------------------------
def _outside_tx(net, nonce: int, priority_fee: int, max_fee: int) -> str:
    """A self-transfer of the operator's key sent by someone else (another process, a person with the key)."""
    tx = {
        "from": OPERATOR,
        "to": OPERATOR,
        "value": "0x0",
        "gas": hex(21_000),
        "nonce": hex(nonce),
        "maxPriorityFeePerGas": hex(priority_fee),
        "maxFeePerGas": hex(max_fee),
    }
    return net.rpc.call("eth_sendTransaction", tx)


def test_a_nonce_taken_before_the_send_is_skipped_and_ours_lands(armed):
    net, venue, below, redis_url = armed
    executor = _executor(net, venue, RpcClient(net.node.url), redis_url)
    nonce = _nonce(net, "pending")
    outside = _outside_tx(net, nonce, 10**6, 10**10)  # waiting in the pool with the next nonce
    state, positions = _view(net, below)
    sent = _sent(executor.on_block(state, positions, time.time()))
    assert sent and sorted(a.nonce for a in sent) == list(range(nonce + 1, nonce + 1 + len(sent)))
    _mine(net)
    state, positions = _view(net, below)
    executor.on_block(state, positions, time.time())
    assert net.rpc.call("eth_getTransactionReceipt", outside)["status"] == "0x1"
    settled = {a.tx_hash: a.outcome for a in executor.attempts}
    assert [settled.get(a.tx_hash) for a in sent] == ["included"] * len(sent), executor.attempts


def test_a_send_replaced_by_an_outside_transaction_ends_replaced_and_frees_its_user(armed):
    net, venue, below, redis_url = armed
    executor = _executor(net, venue, RpcClient(net.node.url), redis_url)
    state, positions = _view(net, below)
    sent = _sent(executor.on_block(state, positions, time.time()))
    assert sent
    ours = min(sent, key=lambda a: a.nonce)
    outside = _outside_tx(net, ours.nonce, 2 * ours.priority_fee_wei, 2 * ours.max_fee_wei)  # same nonce, more fee
    _mine(net)
    assert net.rpc.call("eth_getTransactionReceipt", outside)["status"] == "0x1"
    assert net.rpc.call("eth_getTransactionReceipt", ours.tx_hash) is None
    state, positions = _view(net, below)
    again = _sent(executor.on_block(state, positions, time.time()))
    replaced = [a for a in executor.attempts if a.outcome == "replaced"]
    assert [a.tx_hash for a in replaced] == [ours.tx_hash]
    assert all(f.attempt.user != ours.user for f in executor.in_flight.values() if f.attempt.tx_hash == ours.tx_hash)
    # nothing stuck: the user was freed and, still liquidatable, sent for again at the next nonce, and it lands
    assert [a.user for a in again] == [ours.user] and again[0].nonce == _nonce(net)
    _mine(net)
    state, positions = _view(net, below)
    executor.on_block(state, positions, time.time())
    settled = {a.tx_hash: a.outcome for a in executor.attempts}
    assert settled.get(again[0].tx_hash) == "included", executor.attempts
    assert executor.in_flight == {}


# --- 4. a competitor lands first -------------------------------------------------------------------------------------
def test_a_competitor_landing_first_costs_one_revert_at_most_and_is_named(armed):
    net, venue, below, redis_url = armed
    chain = Chain(net.rpc)
    by_asset = {r.asset.lower(): r.symbol for r in net.market.reserves}
    # the competitor: a funded account holding the debt assets, the Pool approved (a block of its own, before)
    chain.set_balances([COMPETITOR], GAS_MONEY)
    funding = liquidation_txs(
        net.market, COMPETITOR, [LiquidationPick(below[0], "WETH", s, 10**30) for s in ("USDC", "DAI")]
    )
    chain.send([tx for tx in funding if "liquidationCall" not in tx.label])
    _mine(net)
    executor = _executor(net, venue, RpcClient(net.node.url), redis_url)
    before = _view(net, below)
    sent = _sent(executor.on_block(*before, time.time()))
    assert sent
    ours = sent[0]
    pick = LiquidationPick(
        ours.user, by_asset[ours.collateral_asset], by_asset[ours.debt_asset], 0, debt_to_cover=MAX_UINT
    )
    (call,) = [tx for tx in liquidation_txs(net.market, COMPETITOR, [pick]) if "liquidationCall" in tx.label]
    tip = 2 * ours.priority_fee_wei  # outbids ours: first in the block
    rival = net.rpc.call(
        "eth_sendTransaction",
        {**call.params(chain.nonces.take(COMPETITOR)), "maxPriorityFeePerGas": hex(tip), "maxFeePerGas": hex(2 * tip)},
    )
    block = _mine(net)
    assert net.rpc.call("eth_getTransactionReceipt", rival)["status"] == "0x1"
    assert net.rpc.call("eth_getTransactionReceipt", ours.tx_hash)["status"] == "0x0"  # the one revert
    executor.on_block(*_view(net, below), time.time())
    lost = {a.tx_hash: a for a in executor.attempts if a.tx_hash}[ours.tx_hash]
    assert lost.outcome == "lost", lost
    assert lost.competitor.lower() == COMPETITOR.lower() and lost.competitor_tx == rival
    assert lost.block_included == block and lost.lost_by_blocks == 0
    assert not _claimed(executor, ours.user)  # settled: the user is free
    # the next blocks, seen late (the user still below 1 in the executor's view, the competitor's liquidation
    # already on chain): verification fails, so nothing is sent for the user, block after block
    for _ in range(2):
        _mine(net)
        attempts = [a for a in executor.on_block(*before, time.time()) if a.user == ours.user]
        assert [(a.outcome, a.reason[:13]) for a in attempts] == [("skipped", "verification:")], attempts
        assert not _claimed(executor, ours.user) and _pending(net) == 0
    failed = [a for a in executor.attempts if a.outcome in ("reverted", "lost") and a.user == ours.user]
    assert [a.tx_hash for a in failed] == [ours.tx_hash], executor.attempts


# --- a bounded batch per block ---------------------------------------------------------------------------------------
def test_at_most_max_per_block_each_block_the_largest_debts_first_and_the_rest_at_the_next(armed):
    net, venue, below, redis_url = armed
    # with inventory every user below 1 is worth liquidating (the DEX alone serves one of them)
    fund_inventory(net.rpc, net.market, venue.liquidator, 1_000_000)
    venue = dataclasses.replace(venue, inventory=True)
    state, positions = _view(net, below)
    unbounded = _executor(net, venue, RpcClient(net.node.url), redis_url, live=False)
    every = [a.user.lower() for a in unbounded.on_block(state, positions, time.time()) if a.outcome == "dry_run"]
    assert len(every) >= 2, [(a.user, a.outcome, a.reason) for a in unbounded.attempts]
    debts = {p.user.lower(): account_data(p, state).total_debt_base for p in positions}
    executor = _executor(net, venue, RpcClient(net.node.url), redis_url, live=False, max_per_block=1)
    first = [a.user.lower() for a in executor.on_block(state, positions, time.time()) if a.outcome == "dry_run"]
    assert first == [max(every, key=debts.get)] and executor.deferred >= 1  # the largest debt first
    # the next block takes the next user (the first one is left out, as it would be while its transaction is in
    # flight: a dry run has none)
    rest = [p for p in positions if p.user.lower() != first[0]]
    second = [a.user.lower() for a in executor.on_block(state, rest, time.time()) if a.outcome == "dry_run"]
    assert len(second) == 1 and second[0] in every and second[0] != first[0]
    assert _pending(net) == 0  # dry-run: nothing sent


def test_a_wave_goes_out_in_growing_chunks_each_simulated_behind_the_last_and_all_land(armed, monkeypatch):
    import liq_pipeline.execution.executor as executor_module

    net, venue, below, redis_url = armed
    fund_inventory(net.rpc, net.market, venue.liquidator, 1_000_000)
    venue = dataclasses.replace(venue, inventory=True)
    monkeypatch.setattr(executor_module, "FIRST_CHUNK", 1)  # three users: chunks of 1 and 2
    monkeypatch.setattr(executor_module, "CHUNKED_ABOVE", 2)  # (a few users go out in one batch: the next test)
    executor = _executor(net, venue, RpcClient(net.node.url), redis_url)
    state, positions = _view(net, below)
    sent = _sent(executor.on_block(state, positions, time.time()))
    assert len(sent) == 3, [(a.user, a.outcome, a.reason) for a in executor.attempts]
    assert [a.nonce for a in sent] == list(range(sent[0].nonce, sent[0].nonce + 3))
    assert sent[0].sent_at < sent[1].sent_at == sent[2].sent_at  # the largest debt left before the others
    debts = {p.user.lower(): account_data(p, state).total_debt_base for p in positions}
    assert sent[0].user.lower() == max(debts, key=debts.get)
    assert _pending(net) == 3
    _mine(net)
    for attempt in sent:  # the second chunk was verified behind the first, pending then: all three land
        assert net.rpc.call("eth_getTransactionReceipt", attempt.tx_hash)["status"] == "0x1"


def test_a_few_users_go_out_in_one_batch(armed, monkeypatch):
    # at most CHUNKED_ABOVE users ready: no first chunk on the way of the rest (one claim, one verification, one send)
    import liq_pipeline.execution.executor as executor_module

    net, venue, below, redis_url = armed
    monkeypatch.setattr(executor_module, "FIRST_CHUNK", 1)
    executor = _executor(net, venue, RpcClient(net.node.url), redis_url)
    state, positions = _view(net, below)
    assert 1 < len(positions) <= executor_module.CHUNKED_ABOVE
    calls = []
    verify = executor._verify_all
    executor._verify_all = lambda staged, *rest: calls.append(len(staged)) or verify(staged, *rest)
    sent = _sent(executor.on_block(state, positions, time.time()))
    assert len(sent) == len(positions) and calls == [len(positions)]
    assert len({a.sent_at for a in sent}) == 1
    assert [a.nonce for a in sent] == list(range(sent[0].nonce, sent[0].nonce + len(sent)))
    _mine(net)
    assert all(net.rpc.call("eth_getTransactionReceipt", a.tx_hash)["status"] == "0x1" for a in sent)


class _Recording(RpcClient):
    """The node's client, remembering the methods asked, in order."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.methods: list[str] = []

    def batch(self, requests_, *, raise_on_error: bool = True):
        items = list(requests_)
        self.methods += [method for method, _params in items]
        return super().batch(items, raise_on_error=raise_on_error)


def test_other_users_transactions_are_followed_after_this_blocks_sends(armed):
    net, venue, below, redis_url = armed
    fund_inventory(net.rpc, net.market, venue.liquidator, 1_000_000)
    venue = dataclasses.replace(venue, inventory=True)
    rpc = _Recording(net.node.url)
    executor = _executor(net, venue, rpc, redis_url)
    state, positions = _view(net, below)
    (earlier,) = _sent(executor.on_block(state, positions[:1], time.time()))
    _mine(net)
    state, positions = _view(net, below)
    rpc.methods.clear()
    others = [p for p in positions if p.user.lower() != earlier.user.lower()]
    sent = _sent(executor.on_block(state, others, time.time()))
    assert len(sent) == 2
    # the earlier transaction's receipt is asked for once this block's own transactions are verified and out (the
    # sends travel on their own connection), and it settles
    assert rpc.methods.index("eth_simulateV1") < rpc.methods.index("eth_getTransactionReceipt")
    assert [a.outcome for a in executor.attempts if a.attempt_key == earlier.attempt_key][-1] == "included"
