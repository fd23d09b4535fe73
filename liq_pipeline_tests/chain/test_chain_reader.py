"""The chain reader against the real Aave V3 contracts: discovery, events, positions, and the engine's HF equal
to getUserAccountData bit for bit, across a price shock, a real liquidation and accrued interest."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest
from eth_utils import to_checksum_address

from liq_pipeline.chain.abi import event_topic, function
from liq_pipeline.chain.discovery import ReaderError, discover_market, read_market_state
from liq_pipeline.chain.events import borrowers_from_events, decode_logs, fetch_events
from liq_pipeline.chain.ground_truth import user_account_data
from liq_pipeline.chain.log_scan import LogScanner
from liq_pipeline.chain.positions import read_positions
from liq_pipeline.chain.rpc import RpcClient
from liq_pipeline.commands.verify import compare_at_block
from liq_pipeline.devnet import actions
from liq_pipeline.risk.exact import account_data
from liq_pipeline.risk.health import health_factors
from liq_pipeline.risk.market import user_positions
from liq_pipeline.risk.versions import rules_for

pytestmark = pytest.mark.integration
RULES = rules_for("3.0")
STABLES = ("USDC", "DAI", "USDT")


@pytest.fixture
def reader(chain):
    with RpcClient(chain.node.url) as rpc:
        yield rpc


def _head(rpc: RpcClient) -> int:
    return int(rpc.call("eth_blockNumber"), 16)


def test_discovers_the_market_from_the_addresses_provider_alone(chain, reader):
    market = discover_market(reader, chain.market.addresses_provider, _head(reader), RULES)
    assert market.pool == chain.market.pool
    assert market.oracle == chain.market.oracle
    assert market.chain_id == 31337
    expected = {r.symbol: r for r in chain.market.reserves}
    assert {r.symbol for r in market.reserves} == set(expected)
    for reserve in market.reserves:
        spec = expected[reserve.symbol]
        assert reserve.reserve_id == spec.reserve_id
        assert reserve.config.decimals == spec.decimals
        assert reserve.config.liquidation_threshold == spec.liquidation_threshold
        assert reserve.config.liquidation_bonus == spec.liquidation_bonus
        assert reserve.a_token == spec.a_token and reserve.variable_debt_token == spec.variable_debt_token
    assert {r.config.decimals for r in market.reserves} >= {6, 8, 18}
    categories = {c.category_id: c for c in chain.market.emode_categories}
    assert set(market.emode_categories) == set(categories)
    for cid, category in market.emode_categories.items():
        assert category.liquidation_threshold == categories[cid].liquidation_threshold
        assert category.collateral_bitmap  # members known


def test_engine_equals_get_user_account_data_for_every_borrower(chain, reader):
    head = _head(reader)
    result = compare_at_block(reader, chain.market.addresses_provider, "3.0", 0, head, STABLES)
    assert result["compared"] >= len(chain.users)
    assert result["flips"] == 0
    assert result["hf_bit_exact"] == result["compared"]
    assert result["max_rel_err"] == 0.0
    assert result["emode_users"] > 0
    assert result["decimals_held"] == [6, 8, 18]


def test_events_reveal_every_seeded_borrower(chain, reader):
    events = fetch_events(
        reader,
        discover_market(reader, chain.market.addresses_provider, _head(reader), RULES),
        0,
        _head(reader),
        chunk_blocks=3,
    )
    found = set(borrowers_from_events(events))
    assert set(chain.users) <= found
    assert {"Supply", "Borrow", "ReserveDataUpdated"} <= set(events["event"].unique())


def test_price_shock_then_real_liquidation_decoded(chain, reader):
    prices = actions.oracle_prices(chain.rpc, chain.market)
    shocked = {s: p * 80 // 100 for s, p in prices.items() if s in ("WETH", "WBTC", "AERO")}
    actions.set_prices(chain.rpc, chain.market, shocked)
    head = _head(reader)
    market = discover_market(reader, chain.market.addresses_provider, head, RULES)
    feed_events = fetch_events(reader, market, head, head, feeds=[r.aggregator for r in chain.market.reserves])
    assert (feed_events["event"] == "AnswerUpdated").sum() == len(shocked)

    state = read_market_state(reader, market, head, RULES, STABLES)
    positions = read_positions(reader, market, chain.users, head, RULES)
    decided = health_factors(positions, state)
    truth = user_account_data(reader, market.pool, decided["user"].to_list(), head)
    liquidatable = [u for u, flag in decided.select("user", "liquidatable_baseline").iter_rows() if flag]
    assert liquidatable, "a 20 % shock must push some seeded users below 1"
    for user, flag in decided.select("user", "liquidatable_baseline").iter_rows():
        assert flag == (truth[user].health_factor < 10**18)

    victim = liquidatable[0]
    event = actions.liquidate(chain.rpc, chain.market, victim)
    after = _head(reader)
    decoded = fetch_events(reader, market, after, after)
    calls = decoded.filter(pl.col("event") == "LiquidationCall")
    assert calls.height == 1
    row = calls.row(0, named=True)
    assert row["user"] == to_checksum_address(victim)
    assert row["block_number"] == after
    assert str(event.debt_to_cover) in row["args"]
    # after the liquidation the engine still agrees with the contract for the victim
    state_after = read_market_state(reader, market, after, RULES, STABLES)
    position = user_positions(read_positions(reader, market, [victim], after, RULES), state_after.reserve_ids)[0]
    chain_now = user_account_data(reader, market.pool, [victim], after)[victim]
    assert account_data(position, state_after).health_factor == chain_now.health_factor


def test_interest_accrues_from_timestamps_like_the_pool(chain, reader):
    head = _head(reader)
    market = discover_market(reader, chain.market.addresses_provider, head, RULES)
    before = read_market_state(reader, market, head, RULES, STABLES)
    actions.advance_time(chain.rpc, 30 * 24 * 3600)  # an empty block a month later: no index update on chain
    later = _head(reader)
    # the engine projects the indices read at `head` to the later timestamp with the protocol's own formulas
    header = reader.call("eth_getBlockByNumber", hex(later), False)
    projected = dataclasses.replace(before, block=later, timestamp=int(header["timestamp"], 16))
    normalized = function("Pool", "getReserveNormalizedVariableDebt")
    income = function("Pool", "getReserveNormalizedIncome")
    for reserve in market.reserves:
        (debt_index,) = normalized.decode(
            reader.call(*_call(normalized.request(market.pool, reserve.asset, block=later)))
        )
        (income_index,) = income.decode(reader.call(*_call(income.request(market.pool, reserve.asset, block=later))))
        assert projected.debt_index[reserve.reserve_id] == debt_index
        assert projected.income_index[reserve.reserve_id] == income_index
    positions = read_positions(reader, market, chain.users[:50], later, RULES)
    truth = user_account_data(reader, market.pool, positions["user"].to_list(), later)
    grown = 0
    for position in user_positions(positions, projected.reserve_ids):
        assert account_data(position, projected).health_factor == truth[position.user].health_factor
        grown += truth[position.user].total_debt_base > 0
    assert grown > 0


def _call(request):
    method, params = request
    return (method, *params)


def test_collateral_received_by_atoken_transfer_is_discovered(chain, reader):
    head = _head(reader)
    market = discover_market(reader, chain.market.addresses_provider, head, RULES)
    positions = read_positions(reader, market, chain.users, head, RULES)
    sender = None
    for user, amount in positions.select("user", "coll_0").iter_rows():
        if amount and amount > 10**6:
            sender = user
            break
    assert sender is not None
    receiver = "0x00000000000000000000000000000000C0FFEE01"
    a_token = market.by_id[0].a_token
    transfer = "0xa9059cbb" + receiver[2:].lower().rjust(64, "0") + hex(10**6)[2:].rjust(64, "0")
    chain.rpc.call("anvil_impersonateAccount", sender)
    chain.rpc.call("anvil_setBalance", sender, hex(10**18))
    tx = chain.rpc.call("eth_sendTransaction", {"from": sender, "to": a_token, "data": transfer, "gas": hex(500_000)})
    chain.rpc.call("evm_mine")  # in case automine is off
    receipt = chain.rpc.call("eth_getTransactionReceipt", tx)
    assert receipt["status"] == "0x1"
    after = int(receipt["blockNumber"], 16)
    found = borrowers_from_events(fetch_events(reader, market, after, after))
    assert to_checksum_address(receiver) in found
    scanner = LogScanner(market)  # the watcher's scan finds both sides of the transfer too
    scanned = scanner.scan(reader.call(*_call(scanner.request(after, after)))).owners
    assert {to_checksum_address(receiver), sender} <= set(scanned) and scanned == found
    received = read_positions(reader, market, [to_checksum_address(receiver)], after, RULES)
    assert received.height == 1 and received["coll_0"][0] > 0


def test_undecodable_log_is_reported_with_block_and_transaction(chain, reader):
    market = discover_market(reader, chain.market.addresses_provider, _head(reader), RULES)
    borrow = event_topic("Pool", "Borrow")
    bad = {
        "address": market.pool,
        "topics": [borrow, "0x" + "00" * 32],  # Borrow has three indexed topics
        "data": "0x",
        "blockNumber": "0x7",
        "logIndex": "0x0",
        "transactionHash": "0x" + "ab" * 32,
    }
    with pytest.raises(ReaderError, match=r"Borrow log 0x0 of tx 0xabab.* in block 7"):
        decode_logs(market, [bad])


def test_log_scan_names_the_same_owners_and_price_updates_as_decoding(chain, reader):
    """The watcher's scan (owners from topics, narrower topics) against the decoded events, over the whole
    history (the seeding, a price shock, a liquidation) and over the liquidation's block alone."""
    prices = actions.oracle_prices(chain.rpc, chain.market)
    actions.set_prices(chain.rpc, chain.market, {s: p * 80 // 100 for s, p in prices.items() if s in ("WETH", "WBTC")})
    head = _head(reader)
    market = discover_market(reader, chain.market.addresses_provider, head, RULES)
    decided = health_factors(
        read_positions(reader, market, chain.users, head, RULES),
        read_market_state(reader, market, head, RULES, STABLES),
    )
    victim = decided.filter(pl.col("liquidatable_baseline"))["user"][0]
    actions.liquidate(chain.rpc, chain.market, victim)
    head = _head(reader)
    scanner = LogScanner(market)
    for first, last in ((0, head), (head, head)):
        decoded = fetch_events(reader, market, first, last)
        method, params = scanner.request(first, last)
        scanned = scanner.scan(reader.call(method, *params))
        assert scanned.owners == borrowers_from_events(decoded)
        assert scanned.price_updates == (decoded["event"] == "AnswerUpdated").sum()
        kept = decode_logs(market, scanned.logs, market.price_sources.values())
        assert kept.filter(pl.col("event") == "LiquidationCall").height == (
            decoded.filter(pl.col("event") == "LiquidationCall").height
        )
    assert to_checksum_address(victim) in scanned.owners and scanned.price_updates == 0


ADDRESS = "0x" + "00" * 12 + "11" * 20
NOT_ADDRESS = "0x" + "ff" * 32
ZERO_WORD = "0x" + "00" * 32


@pytest.mark.parametrize(
    ("indexed", "data_bytes", "problem"),
    [
        ([ADDRESS], 128, r"2 topics"),  # Borrow has three indexed fields (reserve, onBehalfOf, referralCode)
        ([ADDRESS, ADDRESS, ZERO_WORD], 64, r"64 data bytes"),  # and four words of data
        ([ADDRESS, NOT_ADDRESS, ZERO_WORD], 128, r"is not an address"),  # onBehalfOf
    ],
)
def test_log_scan_reports_a_log_without_its_events_shape(chain, reader, indexed, data_bytes, problem):
    market = discover_market(reader, chain.market.addresses_provider, _head(reader), RULES)
    bad = {
        "address": market.pool,
        "topics": [event_topic("Pool", "Borrow"), *indexed],
        "data": "0x" + "00" * data_bytes,
        "blockNumber": "0x7",
        "logIndex": "0x0",
        "transactionHash": "0x" + "ab" * 32,
    }
    with pytest.raises(ReaderError, match=rf"Borrow log 0x0 of tx 0xabab.* in block 7 .*{problem}"):
        LogScanner(market).scan([bad])


def test_log_scan_skips_an_event_from_an_address_that_does_not_emit_it(chain, reader):
    market = discover_market(reader, chain.market.addresses_provider, _head(reader), RULES)
    forged = {
        "address": "0x" + "42" * 20,  # a Borrow topic, not from the Pool
        "topics": [event_topic("Pool", "Borrow"), ADDRESS, ADDRESS, ZERO_WORD],
        "data": "0x" + "00" * 128,
        "blockNumber": "0x7",
        "logIndex": "0x0",
        "transactionHash": "0x" + "ab" * 32,
    }
    genuine = {**forged, "address": market.pool}
    scanner = LogScanner(market)
    assert scanner.scan([forged]).owners == [] and scanner.scan([forged]).logs == []
    assert scanner.scan([genuine]).owners == [to_checksum_address(ADDRESS[-40:])]
