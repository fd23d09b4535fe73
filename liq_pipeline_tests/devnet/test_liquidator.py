"""The project's liquidator contract on both devnet markets, against the exact models.

A borrower made liquidatable by a price move (the DEX arbitraged back to the new oracle prices) is liquidated by
the contract in flash-loan mode, in one transaction: flash loan of the debt asset, liquidationCall (V3.6: the
L2Pool's compact call), the seized collateral sold on the Uniswap V2 pair, the loan + premium (5 bps, set for the
test) repaid. The profit left in the contract must equal, to the unit, risk.liquidation.liquidation_outcome's
collateral seized sold at risk.amm.get_amount_out, minus the debt repaid, minus the flash premium. A minimum profit
one unit above that reverts and changes nothing; a caller other than the operator reverts; inventory mode with
receiveAToken keeps the aTokens and values them at the oracle.
"""

from __future__ import annotations

import dataclasses

import pytest

from liq_pipeline.chain.discovery import discover_market, read_market_state
from liq_pipeline.chain.positions import read_positions
from liq_pipeline.chain.rpc import RpcClient, RpcError
from liq_pipeline.devnet import liquidator as L
from liq_pipeline.devnet.abi import call_data, decode_result
from liq_pipeline.devnet.accounts import GAS_MONEY, LIQUIDATOR, derived_address
from liq_pipeline.devnet.actions import MAX_UINT, choose_liquidation, oracle_prices
from liq_pipeline.devnet.anvil import BLOCK_TIME
from liq_pipeline.devnet.dex import deploy_dex, read_reserves
from liq_pipeline.devnet.txs import Chain, Tx
from liq_pipeline.risk.amm import get_amount_out
from liq_pipeline.risk.liquidation import liquidation_outcome
from liq_pipeline.risk.market import user_positions
from liq_pipeline.risk.profit import flash_premium
from liq_pipeline.risk.versions import rules_for
from liq_pipeline_tests.fixtures.liquidatable import shock_prices

pytestmark = pytest.mark.integration

PREMIUM_BPS = 5  # Base's flash-loan premium
STRANGER = derived_address("liquidator-test-stranger")


@pytest.fixture(params=["3.6", "3.0"])
def net(request):
    """The V3.6 or V3.0 devnet (rolled back after the test), with liquidatable users after a price move."""
    dev = request.getfixturevalue("chain_v36" if request.param == "3.6" else "chain")
    return dev


def _users(net) -> list[str]:
    if net.market.protocol_version == "3.6":
        from liq_pipeline.devnet.v36.seed import UserPlan, seed_examples

        plans = (
            # HF ~0.97 after WETH -20 %: half the total debt on V3.6
            UserPlan("liquidator-half", supplies={"WETH": "10"}, borrows={"USDC": "20500"}),
            # HF ~0.90: full close, collateral capped
            UserPlan("liquidator-full", supplies={"WETH": "3", "WBTC": "0.05"}, borrows={"DAI": "8500"}),
            UserPlan("liquidator-atoken", supplies={"WBTC": "0.2"}, borrows={"USDC": "11600"}),
        )
        return list(seed_examples(net.rpc, net.deployment, plans).values())
    return list(net.users)


def _balance(rpc, token: str, owner: str, what: str = "balanceOf(address)") -> int:
    answer = rpc.call("eth_call", {"to": token, "data": call_data(what, owner)}, "latest")
    return decode_result(["uint256"], answer)[0]


def _scaled(net, user: str) -> list[int]:
    tokens = [t for r in net.market.reserves for t in (r.a_token, r.variable_debt_token)]
    return [_balance(net.rpc, t, user, "scaledBalanceOf(address)") for t in tokens]


class Predictor:
    """Positions and reserve state at the head, read with the chain reader, and the exact outcome of the next
    block's liquidation."""

    def __init__(self, net, reader: RpcClient):
        self.net, self.reader = net, reader
        self.rules = rules_for(net.market.protocol_version)
        head = int(reader.call("eth_blockNumber"), 16)
        self.info = discover_market(reader, net.market.addresses_provider, head, self.rules)
        self.ids = {r.symbol: r.reserve_id for r in net.market.reserves}
        self.symbols = {r.reserve_id: r.symbol for r in net.market.reserves}

    def read(self, users):
        head = int(self.reader.call("eth_blockNumber"), 16)
        timestamp = int(self.reader.call("eth_getBlockByNumber", hex(head), False)["timestamp"], 16) + BLOCK_TIME
        state = read_market_state(self.reader, self.info, head, self.rules)
        frame = read_positions(self.reader, self.info, users, head, self.rules)
        positions = {p.user.lower(): p for p in user_positions(frame, state.reserve_ids)}
        return state, positions, timestamp

    def outcome(self, user, collateral, debt, amount, receive, liquidator):
        state, positions, timestamp = self.read([user])
        return liquidation_outcome(
            positions[user.lower()], state, self.ids[collateral], self.ids[debt], amount, receive, liquidator, timestamp
        )


def _shocked(net) -> tuple[list[str], object]:
    """Users below HF 1 after the price move; the DEX deployed before and arbitraged after it."""
    users = _users(net)
    dex = deploy_dex(net.rpc, net.market)
    return shock_prices(net, users, dex), dex


def _send(rpc, tx: Tx):
    chain = Chain(rpc)
    with chain.manual_mining():
        done = chain.execute([tx], timestamp=chain.latest_timestamp() + BLOCK_TIME, allow_revert=True)
    receipt = rpc.call("eth_getTransactionReceipt", done.hashes[0])
    return done, receipt


def _revert_name(rpc, tx: Tx) -> str:
    with pytest.raises(RpcError) as raised:
        rpc.call("eth_call", {"from": tx.sender, "to": tx.to, "data": tx.data, "gas": hex(tx.gas)}, "latest")
    error = raised.value
    data = error.data if isinstance(error.data, str) else (error.data or {}).get("data", "")
    return L.ERRORS.get((data or "")[:10], f"{error} {data}")


def _flash_candidates(pred: Predictor, users, dex, liquidator: str) -> list[tuple[str, str, str]]:
    """(user, collateral, debt) the exact model accepts at max uint with collateral != debt, by the flash-loan
    profit (USD) the model and the pools give now, best first; only those with a profit."""
    state, positions, timestamp = pred.read(users)
    state = dataclasses.replace(state, timestamp=timestamp)
    reserves = read_reserves(pred.net.rpc, dex)
    found = []
    for user in users:
        position = positions.get(user.lower())
        if position is None:
            continue
        chosen = choose_liquidation(position, [state], liquidator)
        if chosen is None or chosen.collateral_id == chosen.debt_id or chosen.debt_to_cover != MAX_UINT:
            continue
        collateral, debt = pred.symbols[chosen.collateral_id], pred.symbols[chosen.debt_id]
        outcome = liquidation_outcome(
            position, state, chosen.collateral_id, chosen.debt_id, MAX_UINT, False, liquidator
        )
        pair = dex.pair_of(collateral, debt)
        r0, r1 = reserves[pair.pair]
        reserve_in, reserve_out = (r0, r1) if pair.symbol0 == collateral else (r1, r0)
        out = get_amount_out(outcome.collateral_seized, reserve_in, reserve_out)
        premium = flash_premium(outcome.debt_repaid, PREMIUM_BPS, state.rules)
        profit = out - outcome.debt_repaid - premium
        debt_reserve = state.by_id[chosen.debt_id]
        if profit > 0:
            found.append((profit * debt_reserve.price // debt_reserve.unit, user, collateral, debt))
    return [(user, c, d) for _, user, c, d in sorted(found, reverse=True)]


def _expected_flash(pred, net, dex, liquidator, user, collateral, debt):
    outcome = pred.outcome(user, collateral, debt, MAX_UINT, False, liquidator.address)
    assert outcome.ok, outcome.revert
    pair = dex.pair_of(collateral, debt)
    r0, r1 = read_reserves(net.rpc, dex)[pair.pair]
    reserve_in, reserve_out = (r0, r1) if pair.symbol0 == collateral else (r1, r0)
    swap_out = get_amount_out(outcome.collateral_seized, reserve_in, reserve_out)
    premium = flash_premium(outcome.debt_repaid, PREMIUM_BPS, rules_for(net.market.protocol_version))
    return outcome, pair, swap_out, premium, swap_out - outcome.debt_repaid - premium


def test_flash_loan_liquidation_profit_is_exactly_the_models(net):
    market = net.market
    users, dex = _shocked(net)
    assert users, "the price move left nobody liquidatable"
    L.set_flash_premium(net.rpc, market, PREMIUM_BPS)
    assert L.flash_premium_bps(net.rpc, market) == PREMIUM_BPS
    liquidator = L.deploy_liquidator(net.rpc, market, net.data_dir)
    with RpcClient(net.node.url) as reader:
        pred = Predictor(net, reader)
        candidates = _flash_candidates(pred, users, dex, liquidator.address)
        assert candidates
        user, collateral, debt = candidates[0]
        debt_token = market.by_symbol[debt].asset

        # A minimum profit one unit above the model's: the transaction reverts, nothing moves.
        outcome, pair, swap_out, premium, profit = _expected_flash(pred, net, dex, liquidator, user, collateral, debt)
        assert profit > 0, (user, collateral, debt, outcome.debt_repaid, swap_out)
        order = L.order_for(market, collateral, debt, user, pair=pair.pair, min_profit=profit + 1)
        reserves_before = read_reserves(net.rpc, dex)[pair.pair]
        scaled_before = _scaled(net, user)
        tx = liquidator.flash_tx(order, outcome.debt_repaid)
        assert _revert_name(net.rpc, tx) == "ProfitTooLow"
        done, receipt = _send(net.rpc, tx)
        assert done.ok == [False] and receipt["status"] == "0x0"
        assert read_reserves(net.rpc, dex)[pair.pair] == reserves_before
        assert _balance(net.rpc, debt_token, liquidator.address) == 0
        assert _scaled(net, user) == scaled_before  # the user's aTokens and debt, interest aside

        # Exactly the model's profit as the minimum: accepted, and that much is left in the contract.
        outcome, pair, swap_out, premium, profit = _expected_flash(pred, net, dex, liquidator, user, collateral, debt)
        order = L.order_for(market, collateral, debt, user, pair=pair.pair, min_profit=profit)
        done, receipt = _send(net.rpc, liquidator.flash_tx(order, outcome.debt_repaid))
        assert done.ok == [True]
        (event,) = L.liquidated_events(done.logs, liquidator.address)
        assert (event.debt_repaid, event.collateral_received) == (outcome.debt_repaid, outcome.collateral_seized)
        assert (event.swap_out, event.premium, event.profit) == (swap_out, premium, profit)
        assert _balance(net.rpc, debt_token, liquidator.address) == profit
        assert _balance(net.rpc, market.by_symbol[collateral].asset, liquidator.address) == 0
        gas = int(receipt["gasUsed"], 16)
        print(f"\n{market.protocol_version} flash liquidation {collateral}->{debt}: gas {gas}, profit {profit}")
        assert gas < 1_000_000

        # The operator takes the profit out; nobody else can.
        stranger_withdraw = liquidator.withdraw_tx(debt_token, sender=STRANGER)
        Chain(net.rpc).set_balances([STRANGER], GAS_MONEY)
        assert _revert_name(net.rpc, stranger_withdraw) == "NotOperator"
        before = _balance(net.rpc, debt_token, LIQUIDATOR)
        done, _ = _send(net.rpc, liquidator.withdraw_tx(debt_token))
        assert done.ok == [True] and _balance(net.rpc, debt_token, LIQUIDATOR) - before == profit


def test_only_the_operator_and_only_the_pool(net):
    market = net.market
    users, dex = _shocked(net)
    liquidator = L.deploy_liquidator(net.rpc, market, net.data_dir)
    Chain(net.rpc).set_balances([STRANGER], GAS_MONEY)
    with RpcClient(net.node.url) as reader:
        user, collateral, debt = _flash_candidates(Predictor(net, reader), users, dex, liquidator.address)[0]
    order = L.order_for(market, collateral, debt, user, pair=dex.pair_of(collateral, debt).pair)
    for tx in (liquidator.flash_tx(order, 10**6, sender=STRANGER), liquidator.inventory_tx(order, sender=STRANGER)):
        assert _revert_name(net.rpc, tx) == "NotOperator"
        done, _ = _send(net.rpc, tx)
        assert done.ok == [False]
    # executeOperation called by anyone but the Pool (here: the operator itself)
    data = call_data(
        "executeOperation(address,uint256,uint256,address,bytes)",
        market.by_symbol[debt].asset,
        1,
        0,
        liquidator.address,
        b"",
    )
    assert _revert_name(net.rpc, Tx(LIQUIDATOR, liquidator.address, data)) == "NotPool"
    # a flash loan this contract did not start: the Pool calls back with another initiator
    flash = call_data(
        "flashLoanSimple(address,address,uint256,bytes,uint16)", liquidator.address, order.debt, 10**6, b"", 0
    )
    assert _revert_name(net.rpc, Tx(STRANGER, market.pool, flash)) == "NotInitiator"


def test_inventory_mode_with_a_token_receipt(net):
    market = net.market
    users, dex = _shocked(net)
    liquidator = L.deploy_liquidator(net.rpc, market, net.data_dir)
    with RpcClient(net.node.url) as reader:
        pred = Predictor(net, reader)
        user, collateral, debt = _flash_candidates(pred, users, dex, liquidator.address)[0]
        debt_token = market.by_symbol[debt].asset
        a_token = market.by_symbol[collateral].a_token
        outcome = pred.outcome(user, collateral, debt, MAX_UINT, True, liquidator.address)
        assert outcome.ok
        inventory = 2 * outcome.debt_repaid + 1
        chain = Chain(net.rpc)
        chain.set_balances([LIQUIDATOR], GAS_MONEY)
        with chain.manual_mining():
            chain.execute(
                [Tx(LIQUIDATOR, debt_token, call_data("mint(address,uint256)", liquidator.address, inventory))],
                timestamp=chain.latest_timestamp() + BLOCK_TIME,
            )
        prices = oracle_prices(net.rpc, market)
        unit_c, unit_d = 10 ** market.by_symbol[collateral].decimals, 10 ** market.by_symbol[debt].decimals

        def profit_of(received: int, repaid: int) -> int:
            return received * prices[collateral] * unit_d // (prices[debt] * unit_c) - repaid

        # too greedy: reverts, the inventory untouched
        greedy = L.order_for(market, collateral, debt, user, receive_a_token=True, min_profit=10**40)
        assert _revert_name(net.rpc, liquidator.inventory_tx(greedy)) == "ProfitTooLow"
        done, _ = _send(net.rpc, liquidator.inventory_tx(greedy))
        assert done.ok == [False] and _balance(net.rpc, debt_token, liquidator.address) == inventory

        outcome = pred.outcome(user, collateral, debt, MAX_UINT, True, liquidator.address)
        # the standard liquidationCall (the L2Pool has it too) rather than the compact one
        order = L.order_for(market, collateral, debt, user, receive_a_token=True, min_profit=1, compact=False)
        done, _ = _send(net.rpc, liquidator.inventory_tx(order))
        assert done.ok == [True]
        (event,) = L.liquidated_events(done.logs, liquidator.address)
        assert event.debt_repaid == outcome.debt_repaid
        assert _balance(net.rpc, debt_token, liquidator.address) == inventory - outcome.debt_repaid
        assert _balance(net.rpc, a_token, liquidator.address, "scaledBalanceOf(address)") == outcome.collateral_scaled
        assert event.collateral_received == _balance(net.rpc, a_token, liquidator.address)
        assert abs(event.collateral_received - outcome.collateral_seized) <= 1  # aToken balance rounding
        assert event.profit == profit_of(event.collateral_received, event.debt_repaid) > 0
        assert _balance(net.rpc, market.by_symbol[collateral].asset, liquidator.address) == 0


def test_restock_tops_each_token_back_up_to_its_target_and_no_further(chain_v36):
    net, market = chain_v36, chain_v36.market
    holder = STRANGER
    first = L.restock_txs(net.rpc, market, holder, 1_000)
    assert len(first) == len(market.reserves)  # holds nothing yet: one mint per token
    chain = Chain(net.rpc)
    chain.set_balances([market.admin], GAS_MONEY)
    with chain.manual_mining():
        chain.execute(first, timestamp=chain.latest_timestamp() + BLOCK_TIME)
    targets = {r.symbol: 1_000 * 10**8 * 10**r.decimals // r.initial_price for r in market.reserves}
    assert {r.symbol: _balance(net.rpc, r.asset, holder) for r in market.reserves} == targets
    assert L.restock_txs(net.rpc, market, holder, 1_000) == []  # full: nothing to mint
    assert [tx.label for tx in L.restock_txs(net.rpc, market, holder, 2_000)] == [
        f"restock {r.symbol}" for r in market.reserves
    ]
