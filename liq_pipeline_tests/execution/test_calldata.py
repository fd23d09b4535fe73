"""execution.calldata: the standard call decodes to its arguments; the compact one equals the devnet's real
L2Encoder.encodeLiquidationCall for random inputs (uint256 max and the uint128 edge included)."""

from __future__ import annotations

import random

import pytest
from eth_abi import decode
from web3.exceptions import ContractLogicError

from liq_pipeline.chain.discovery import discover_market, read_market_state
from liq_pipeline.chain.positions import read_positions
from liq_pipeline.chain.rpc import RpcClient
from liq_pipeline.devnet import actions
from liq_pipeline.devnet.accounts import LIQUIDATOR
from liq_pipeline.devnet.anvil import BLOCK_TIME
from liq_pipeline.devnet.liquidation_check import fund_liquidator
from liq_pipeline.devnet.txs import CALL_GAS, Chain, Tx
from liq_pipeline.devnet.v36.seed import UserPlan, seed_examples
from liq_pipeline.execution.calldata import (
    COMPACT_SIGNATURE,
    STANDARD_SIGNATURE,
    UINT128_MAX,
    compact_calldata,
    encode_liquidation_args,
    plan_calldata,
    selector,
    standard_calldata,
)
from liq_pipeline.risk.market import user_positions
from liq_pipeline.risk.profit import CostInputs, plan_liquidation
from liq_pipeline.risk.versions import rules_for
from liq_pipeline.risk.wadray import UINT256_MAX
from liq_pipeline_tests.risk.factories import coll, debt, user
from liq_pipeline_tests.risk.test_liquidation import _market

USER = "0x" + "ab" * 20
A, B = "0x" + "11" * 20, "0x" + "22" * 20


def test_standard_calldata_is_the_abi_encoding():
    data = standard_calldata(A, B, USER, 123, True)
    assert data[:4] == selector(STANDARD_SIGNATURE) == bytes.fromhex("00a718a9")
    assert len(data) == 4 + 5 * 32
    assert decode(["address", "address", "address", "uint256", "bool"], data[4:]) == (A, B, USER, 123, True)
    with pytest.raises(ValueError, match="uint256"):
        standard_calldata(A, B, USER, -1)


def test_compact_calldata_packs_ids_user_amount_and_flag():
    data = compact_calldata(3, 1, USER, UINT256_MAX, True)
    assert data[:4] == selector(COMPACT_SIGNATURE) and len(data) == 4 + 64
    args1, args2 = int.from_bytes(data[4:36], "big"), int.from_bytes(data[36:], "big")
    assert args1 & 0xFFFF == 3 and args1 >> 16 & 0xFFFF == 1 and args1 >> 32 == int(USER, 16)
    assert args2 == UINT128_MAX | 1 << 128
    with pytest.raises(ValueError, match="uint128"):
        encode_liquidation_args(0, 1, USER, UINT128_MAX + 1)
    with pytest.raises(ValueError, match="uint16"):
        encode_liquidation_args(1 << 16, 1, USER, 1)


def test_plan_calldata_uses_the_plans_pair_and_amount():
    E18, E6 = 10**18, 10**6
    position = user("0x" + "cd" * 20, {0: coll(E18), 1: debt(1_700 * E6)})
    costs = CostInputs(5, 600_000, 10**7, 0, 2_000 * 10**8)
    plan = plan_liquidation(position, _market("3.6"), {(0, 1): (10_000 * E18, 20_000_000 * E6)}, costs)
    assert plan_calldata(plan, compact=True) == compact_calldata(0, 1, position.user, plan.debt_to_cover)
    standard = plan_calldata(plan, compact=False)
    assert decode(["address", "address", "address", "uint256", "bool"], standard[4:])[:4] == (
        plan.collateral_asset,
        plan.debt_asset,
        position.user,
        plan.debt_to_cover,
    )


@pytest.mark.integration
def test_compact_encoding_equals_the_devnets_l2encoder(chain_v36):
    encoder = chain_v36.contract(chain_v36.deployment.l2_encoder, "L2Encoder").functions.encodeLiquidationCall
    reserves = chain_v36.market.reserves
    rng = random.Random(13)
    amounts = [0, 1, UINT128_MAX - 1, UINT128_MAX, UINT256_MAX, UINT256_MAX, 10**6, 10**24]
    amounts += [rng.randrange(UINT128_MAX) for _ in range(20)] + [rng.randrange(10**30) for _ in range(20)]
    for amount in amounts:
        collateral, debt_reserve = rng.choice(reserves), rng.choice(reserves)
        user_address = "0x" + rng.randbytes(20).hex()
        receive = rng.random() < 0.5
        answer = encoder(
            chain_v36.w3.to_checksum_address(collateral.asset),
            chain_v36.w3.to_checksum_address(debt_reserve.asset),
            chain_v36.w3.to_checksum_address(user_address),
            amount,
            receive,
        ).call()
        ours = encode_liquidation_args(collateral.reserve_id, debt_reserve.reserve_id, user_address, amount, receive)
        assert tuple(answer) == ours, (collateral.symbol, debt_reserve.symbol, amount, receive)
    # Above uint128 (and not uint256 max) both refuse: SafeCast reverts, the encoder here raises.
    with pytest.raises(ContractLogicError):
        checksum = chain_v36.w3.to_checksum_address
        encoder(checksum(reserves[0].asset), checksum(reserves[1].asset), checksum(USER), UINT128_MAX + 1, False).call()
    with pytest.raises(ValueError):
        encode_liquidation_args(reserves[0].reserve_id, reserves[1].reserve_id, USER, UINT128_MAX + 1)


@pytest.mark.integration
def test_a_plans_compact_calldata_liquidates_as_predicted_on_the_l2pool(chain_v36):
    """End to end on the V3.6 L2Pool: state read from the chain, the exact plan, its compact calldata sent as is;
    the LiquidationCall event's two amounts are the plan's outcome."""
    dev = chain_v36
    market = dev.market
    rules = rules_for("3.6")
    seeded = seed_examples(
        dev.rpc, dev.deployment, (UserPlan("plan-e2e", supplies={"WETH": "2"}, borrows={"USDC": "4300"}),)
    )
    borrower = seeded["plan-e2e"]
    fund_liquidator(dev.rpc, market)
    actions.set_prices(dev.rpc, market, {"WETH": 2_400 * 10**8})
    with RpcClient(dev.node.url) as reader:
        head = int(reader.call("eth_blockNumber"), 16)
        discovered = discover_market(reader, market.addresses_provider, head, rules)
        state = read_market_state(reader, discovered, head, rules)
        frame = read_positions(reader, discovered, [borrower], head, rules)
        (position,) = user_positions(frame, state.reserve_ids)
        chain = Chain(dev.rpc)
        timestamp = chain.latest_timestamp() + BLOCK_TIME
        ids = {r.symbol: r.reserve_id for r in market.reserves}
        weth, usdc = ids["WETH"], ids["USDC"]
        pools = {(weth, usdc): (1_000 * 10**18, 2_400_000 * 10**6)}
        costs = CostInputs(5, 600_000, 10**7, 0, 2_400 * 10**8)
        plan = plan_liquidation(position, state, pools, costs, liquidator=LIQUIDATOR, timestamp=timestamp)
        assert plan is not None and (plan.collateral_id, plan.debt_id) == (weth, usdc)
        data = "0x" + plan_calldata(plan, compact=True).hex()
        with chain.manual_mining():
            done = chain.execute(
                [Tx(LIQUIDATOR, market.pool, data, gas=CALL_GAS, label="planned liquidationCall")],
                timestamp=timestamp,
                allow_revert=True,
            )
    assert done.ok[-1]
    (event,) = actions.liquidation_events(done.logs, market.pool)
    assert event.user.lower() == borrower.lower() and event.liquidator.lower() == LIQUIDATOR.lower()
    assert event.debt_to_cover == plan.outcome.debt_repaid
    assert event.liquidated_collateral_amount == plan.outcome.collateral_seized
