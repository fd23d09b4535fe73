"""The simulator before the block (issue #15): paced blocks (a price update in anvil's pool before its block is
mined, a bot reacting in the window), and the competitors a public bot faces on Base: pre-confirmation, SVR."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import defaultdict

import pytest

from liq_pipeline.chain.pending import MEMPOOL, PendingPriceStream, PriceUpdate, ws_url_for
from liq_pipeline.devnet.accounts import GAS_MONEY, OPERATOR, derived_address
from liq_pipeline.devnet.actions import ANSWER_UPDATED_TOPIC, account_data, liquidation_events
from liq_pipeline.devnet.competitors import PRECONF_COMPETITOR, PRICE_UPDATE_PRIORITY_FEE, SVR_SEARCHER
from liq_pipeline.devnet.rpc import Rpc
from liq_pipeline.devnet.simulate import SimConfig, simulate
from liq_pipeline.devnet.txs import Chain
from liq_pipeline_tests.fixtures.devnet import rolled_back

WAD = 10**18
GWEI = 10**9
# Violent on purpose, and only price moves and liquidations (no newcomers, repays, withdrawals: the simulator's
# rng then draws for prices only, so two runs of one seed see the same prices whatever happens on chain).
QUIET = dict(
    seed=5,
    vol_scale=40.0,
    shock_probability=0.25,
    liquidation_delay=2,
    arrivals_per_block=0.0,
    repays_per_block=0.0,
    withdrawals_per_block=0.0,
)


def _blocks(rpc: Rpc, first: int, last: int) -> dict[int, list[dict]]:
    """Each block's transactions (full objects, in block order)."""
    return {n: rpc.call("eth_getBlockByNumber", hex(n), True)["transactions"] for n in range(first, last + 1)}


def _updates(logs: list[dict], feeds: set[str]) -> dict[int, set[tuple[str, int]]]:
    """Per block: the (feed, answer) pairs of its AnswerUpdated events."""
    out: dict[int, set[tuple[str, int]]] = defaultdict(set)
    for log in logs:
        if log["topics"] and log["topics"][0] == ANSWER_UPDATED_TOPIC and log["address"].lower() in feeds:
            out[int(log["blockNumber"], 16)].add((log["address"].lower(), int(log["topics"][1], 16)))
    return out


def _is_price_update(tx: dict, admin: str, feeds: set[str]) -> bool:
    return tx["from"].lower() == admin.lower() and (tx["to"] or "").lower() in feeds


class Bot:
    """A third party reacting in the window: from on_pending, one transaction. `capped`: as the executor's
    pre-confirmation lane, at the highest fees that stay under the pending price update's (its max fee - 1, its
    tip - 1, read from anvil's pending block); else a generous fixed tip (1,000 gwei: far above the devnet's
    traffic, under PRICE_UPDATE_PRIORITY_FEE). Records (tx hash, when on_pending was called, the answers) per
    block index."""

    def __init__(self, devnet, capped: bool):
        self.capped = capped
        self.rpc, self.market = devnet.rpc, devnet.market
        self.address = derived_address("test-pending-bot")
        self.feeds = {r.aggregator.lower() for r in devnet.market.reserves}
        self.sent: dict[int, tuple[str, float, dict[str, int]]] = {}

    def __call__(self, index: int, answers: dict[str, int]) -> None:
        at = time.perf_counter()
        Chain(self.rpc).set_balances([self.address], GAS_MONEY)
        pending = self.rpc.call("eth_getBlockByNumber", "pending", True)["transactions"]
        caps = [tx for tx in pending if _is_price_update(tx, self.market.admin, self.feeds)] if self.capped else []
        max_fee = min((int(tx["maxFeePerGas"], 16) for tx in caps), default=2_000 * GWEI) - 1
        tip = min((int(tx["maxPriorityFeePerGas"], 16) for tx in caps), default=1_000 * GWEI) - 1
        tx = {"from": self.address, "to": self.address, "value": "0x1", "gas": hex(21_000)}
        tx |= {"maxPriorityFeePerGas": hex(tip), "maxFeePerGas": hex(max_fee)}
        self.sent[index] = (self.rpc.call("eth_sendTransaction", tx), at, answers)


def _run(devnet, config: SimConfig, **kwargs):
    """One simulation between evm_snapshot and evm_revert: (result, first block, its logs, its blocks' transactions,
    the HF of each liquidated user at the block before its liquidation)."""
    with rolled_back(devnet.rpc):
        first = int(devnet.rpc.call("eth_blockNumber"), 16) + 1
        result = simulate(devnet.rpc, devnet.market, config, devnet.users, **kwargs)
        last = int(devnet.rpc.call("eth_blockNumber"), 16)
        logs = devnet.rpc.call("eth_getLogs", {"fromBlock": hex(first), "toBlock": hex(last)})
        blocks = _blocks(devnet.rpc, first, last)
        hf_before = {}  # (user, block) -> HF at the sealed block before the liquidation's block
        for event in liquidation_events(logs, devnet.market.pool):
            (data,) = account_data(devnet.rpc, devnet.market.pool, [event.user], event.block - 1)
            hf_before[(event.user, event.block)] = data.health_factor
    return result, first, logs, blocks, hf_before


def _simulate_noting_seals(devnet, config: SimConfig, sealed: dict[int, int], **kwargs):
    """simulate() on the session devnet; `sealed` gets each block index's block number as it is sealed."""
    return simulate(
        devnet.rpc,
        devnet.market,
        config,
        devnet.users,
        on_block=lambda i, partial: sealed.setdefault(i, partial.blocks[1]),
        **kwargs,
    )


@pytest.mark.integration
def test_a_bot_in_the_window_lands_in_the_updates_block_behind_them(devnet):
    """pending_window_ms > 0: on_pending is called once the block's price updates are in the pool; a third party's
    transaction sent from there (tipping far more than the simulator's traffic) is mined in that block, after the
    updates, and the block is not mined before the window has passed."""
    window_ms = 300
    config = SimConfig(blocks=5, pending_window_ms=window_ms, **QUIET)
    rpc, market = devnet.rpc, devnet.market
    feeds = {r.aggregator.lower() for r in market.reserves}
    bot = Bot(devnet, capped=False)
    sealed: dict[int, int] = {}  # block index -> block number
    first_seen: dict[int, float] = {}  # block number -> when a poller first saw it
    stop = threading.Event()

    def poll() -> None:
        with Rpc(devnet.node.url) as own:
            while not stop.is_set():
                number = int(own.call("eth_blockNumber"), 16)
                first_seen.setdefault(number, time.perf_counter())
                time.sleep(0.001)

    with rolled_back(rpc):
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            result = _simulate_noting_seals(devnet, config, sealed, on_pending=bot)
        finally:
            stop.set()
            poller.join(5)
        blocks = _blocks(rpc, sealed[1], sealed[config.blocks])
        logs = rpc.call("eth_getLogs", {"fromBlock": hex(sealed[1]), "toBlock": hex(sealed[config.blocks])})
    reacted = bot.sent
    assert sorted(reacted) == list(range(1, config.blocks + 1))
    updates = _updates(logs, feeds)
    assert sum(len(answers) for _, _, answers in reacted.values()) == result.price_updates >= config.blocks
    for index, (tx_hash, at, answers) in reacted.items():
        number = sealed[index]
        order = [tx["hash"] for tx in blocks[number]]
        assert tx_hash in order, f"the bot's transaction of block index {index} is not in block {number}"
        mine = order.index(tx_hash)
        price_positions = [k for k, tx in enumerate(blocks[number]) if _is_price_update(tx, market.admin, feeds)]
        assert len(price_positions) == len(answers) and len(updates[number]) == len(answers)
        assert all(k < mine for k in price_positions), (index, price_positions, mine)
        tips = {int(tx["maxPriorityFeePerGas"], 16) for k, tx in enumerate(blocks[number]) if k in price_positions}
        assert tips <= {PRICE_UPDATE_PRIORITY_FEE}
        # the block appeared no earlier than the window after the updates were sent (which was before `at`;
        # sending them takes a few ms: the margin)
        waited = first_seen[number] - at
        assert waited >= (window_ms - 50) / 1000, f"block {number} mined {waited * 1000:.0f} ms after on_pending"
    assert set(first_seen) >= set(sealed.values())


@pytest.mark.integration
def test_preconf_competitor_liquidates_in_the_block_of_the_update(devnet):
    """ "preconf": the users a block's price update pushes below 1 (HF >= 1 at the sealed block before) are
    liquidated by PRECONF_COMPETITOR in that very block, behind the update."""
    config = SimConfig(blocks=10, pending_window_ms=20, competitor="preconf", **QUIET)
    result, _, logs, blocks, hf_before = _run(devnet, config)
    feeds = {r.aggregator.lower() for r in devnet.market.reserves}
    updates = _updates(logs, feeds)
    events = liquidation_events(logs, devnet.market.pool)
    preconf = [e for e in events if e.liquidator == PRECONF_COMPETITOR]
    assert len(preconf) == result.liquidations_by["preconf"] >= 1, result
    assert result.liquidations == len(events) == sum(result.liquidations_by.values())
    crossings = [e for e in preconf if hf_before[(e.user, e.block)] >= WAD]
    assert crossings, "no preconf liquidation of a user still healthy at the sealed block before"
    for event in crossings:
        assert updates[event.block], f"block {event.block} has no price update, yet {event.user} crossed"
        order = [tx["hash"] for tx in blocks[event.block]]
        update_at = [k for k, tx in enumerate(blocks[event.block]) if tx["to"] and tx["to"].lower() in feeds]
        assert max(update_at) < order.index(event.transaction_hash)
    assert result.liquidation_reverts_by["preconf"] == 0, result.liquidation_reverts_by


@pytest.mark.integration
def test_svr_searcher_backruns_updates_and_missed_auctions_delay_them(devnet):
    """ "svr": the searcher's liquidations of the users an update pushes below 1 come right behind the update, in
    its block (only updates and the searcher's own transactions before them, even with a bot tipping as much as it
    can under the update). With svr_miss_rate=1 the searcher never acts and every block's updates go out
    svr_fallback_blocks later, unchanged."""
    feeds = {r.aggregator.lower() for r in devnet.market.reserves}
    admin = devnet.market.admin
    acting = SimConfig(blocks=10, pending_window_ms=20, competitor="svr", svr_miss_rate=0.0, **QUIET)
    bot = Bot(devnet, capped=True)
    result, first, logs, blocks, hf_before = _run(devnet, acting, on_pending=bot)
    events = liquidation_events(logs, devnet.market.pool)
    backruns = [e for e in events if e.liquidator == SVR_SEARCHER]
    assert len(backruns) == result.liquidations_by["svr"] >= 1, result
    assert result.svr_auctions_missed == 0 and result.fallback_blocks == []
    updates = _updates(logs, feeds)
    assert result.svr_auctions_held == len(updates) >= acting.blocks - 1
    for event in backruns:
        assert hf_before[(event.user, event.block)] >= WAD  # a crossing the update caused
        txs = blocks[event.block]
        position = [tx["hash"] for tx in txs].index(event.transaction_hash)
        ahead = txs[:position]
        assert any(_is_price_update(tx, admin, feeds) for tx in ahead)
        strangers = [
            tx for tx in ahead if not _is_price_update(tx, admin, feeds) and tx["from"] != SVR_SEARCHER.lower()
        ]
        assert not strangers, (event.block, [(tx["from"], tx["to"]) for tx in strangers])
    bot_txs = {tx_hash for tx_hash, _, _ in bot.sent.values()}
    assert any(tx["hash"] in bot_txs for e in backruns for tx in blocks[e.block])  # the bot was there, behind

    delay = 2
    missing = dataclasses.replace(acting, svr_miss_rate=1.0, svr_fallback_blocks=delay)
    held, first_h, logs_h, blocks_h, _ = _run(devnet, missing)
    assert first_h == first  # both runs start from the same block
    assert held.liquidations_by["svr"] == 0 and held.svr_auctions_held == 0
    assert not any(tx["from"] == SVR_SEARCHER.lower() for txs in blocks_h.values() for tx in txs)
    assert held.svr_auctions_missed == result.svr_auctions_held  # the same prices: the same blocks had updates
    late = _updates(logs_h, feeds)
    for k in range(acting.blocks - delay):  # block first + k's updates: there when the auction acts, else k + delay
        assert late.get(first + k + delay, set()) == updates.get(first + k, set()), k
    assert not any(late.get(first + k) for k in range(delay))
    assert held.fallback_blocks == sorted(late) and held.price_updates == sum(len(v) for v in late.values())


@pytest.mark.integration
def test_svr_an_update_is_never_in_the_pool_without_its_backrun(devnet):
    """ "svr": when the auction acts on a block, its updates and the searcher's backrun reach anvil's pool together
    (one batch): an observer of the pending-transaction stream that reads the pool as soon as it sees an update
    (PendingPriceStream, on its own thread) already finds the whole backrun of that update's block there, and so
    does on_pending. With the updates sent first and the backrun planned after, the observer saw them alone."""
    rpc, market = devnet.rpc, devnet.market
    config = SimConfig(blocks=10, pending_window_ms=100, competitor="svr", svr_miss_rate=0.2, **QUIET)
    searcher = SVR_SEARCHER.lower()
    # the searcher's next nonce counting the pool, read from the stream's thread (per update's hash) and from
    # on_pending (per block index)
    streamed: dict[str, int] = {}
    in_window: dict[int, int] = {}
    sealed: dict[int, int] = {}
    with Rpc(devnet.node.url) as watcher:

        def seen(update: PriceUpdate) -> None:
            streamed[update.tx_hash] = int(watcher.call("eth_getTransactionCount", SVR_SEARCHER, "pending"), 16)

        def on_pending(index: int, answers: dict[str, int]) -> None:
            in_window[index] = int(rpc.call("eth_getTransactionCount", SVR_SEARCHER, "pending"), 16)

        feeds = {r.aggregator: r.symbol for r in market.reserves}
        stream = PendingPriceStream(ws_url_for(devnet.node.url), MEMPOOL, feeds, seen)
        assert stream.start(), "not subscribed within 5 s"
        try:
            with rolled_back(rpc):
                result = _simulate_noting_seals(devnet, config, sealed, on_pending=on_pending)
                deadline = time.monotonic() + 10
                while len(streamed) < result.price_updates and time.monotonic() < deadline:
                    time.sleep(0.01)
                blocks = _blocks(rpc, sealed[1], sealed[config.blocks])
        finally:
            stream.stop()
    admin, aggregators = market.admin, {f.lower() for f in feeds}
    assert len(streamed) == result.price_updates >= config.blocks - 1, (len(streamed), result.price_updates)
    assert result.svr_auctions_held and result.svr_auctions_missed, result
    index_of = {number: index for index, number in sealed.items()}
    checked = 0
    for number, txs in blocks.items():
        backrun = [int(tx["nonce"], 16) for tx in txs if tx["from"] == searcher]
        if not backrun:  # the auction did not act, or no user crossed
            continue
        complete = max(backrun) + 1  # the searcher's pending nonce once the whole backrun is in the pool
        updates = [tx["hash"] for tx in txs if _is_price_update(tx, admin, aggregators)]
        assert updates, f"block {number}: a backrun without an update"
        for tx_hash in updates:
            assert streamed[tx_hash] >= complete, (
                f"block {number}: the stream showed update {tx_hash} while {complete - streamed[tx_hash]} of "
                f"the searcher's {len(backrun)} backrun transactions were not in the pool"
            )
        assert in_window[index_of[number]] >= complete, number
        checked += 1
    assert checked >= 3 and result.liquidations_by["svr"] >= checked, (checked, result.liquidations_by)
    assert result.liquidation_reverts_by["svr"] == 0, result.liquidation_reverts_by


@pytest.mark.integration
def test_svr_with_misses_is_deterministic_for_a_seed(devnet):
    config = SimConfig(blocks=8, pending_window_ms=10, competitor="svr", svr_miss_rate=0.5, **QUIET)
    first, *_ = _run(devnet, config)
    second, *_ = _run(devnet, config)
    assert first.svr_auctions_held and first.svr_auctions_missed and first.fallback_blocks
    strip = ("seconds",)
    assert {k: v for k, v in dataclasses.asdict(first).items() if k not in strip} == {
        k: v for k, v in dataclasses.asdict(second).items() if k not in strip
    }


def test_a_bad_competitor_is_one_clear_error():
    with pytest.raises(ValueError) as caught:
        SimConfig(blocks=1, competitor="arena", pending_window_ms=200)
    message = str(caught.value)
    assert message == "SimConfig.competitor='arena' is not valid: expected one of 'sealed', 'preconf', 'svr'"
    with pytest.raises(
        ValueError, match=r"^SimConfig\.pending_window_ms=0 is not valid: expected > 0 with competitor='preconf'"
    ):
        SimConfig(blocks=1, competitor="preconf")
    for name, value in (("svr_miss_rate", 1.5), ("svr_fallback_blocks", 0), ("pending_window_ms", -1)):
        with pytest.raises(ValueError, match=rf"^SimConfig\.{name}="):
            SimConfig(**{"blocks": 1, "competitor": "svr", "pending_window_ms": 200, name: value})
    assert SimConfig(blocks=1).competitor == "sealed"  # the defaults: today's simulator


@pytest.mark.integration
def test_an_actor_below_half_its_gas_money_is_topped_up_in_the_next_block(devnet):
    """The executor's sender (the devnet's operator) pays its gas in ETH while its liquidations pay in tokens: the
    simulator tops every gas payer back up once below half its amount (`liq arena`, `make dev`), and counts it."""
    with rolled_back(devnet.rpc):
        devnet.rpc.call("anvil_setBalance", OPERATOR, hex(GAS_MONEY // 2 - 1))
        result = simulate(devnet.rpc, devnet.market, SimConfig(blocks=2, seed=3), devnet.users)
        assert result.gas_topups.get(OPERATOR) == 1, result.gas_topups  # once: full again after the first block
        assert int(devnet.rpc.call("eth_getBalance", OPERATOR, "latest"), 16) == GAS_MONEY
