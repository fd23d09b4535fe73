"""The devnet's Uniswap V2 on both markets: pools at the oracle's prices, swaps paying exactly what risk/amm.py
says, and arbitrage pulling every pool back to a moved oracle."""

from __future__ import annotations

from itertools import combinations

import pytest

from liq_pipeline.devnet import dex as dexmod
from liq_pipeline.devnet.abi import call_data, decode_result
from liq_pipeline.devnet.accounts import GAS_MONEY, derived_address
from liq_pipeline.devnet.actions import oracle_prices, set_prices
from liq_pipeline.devnet.dex import ARBITRAGEUR, arbitrage, deploy_dex, load_dex, read_reserves
from liq_pipeline.devnet.txs import Chain, Tx
from liq_pipeline.risk.amm import get_amount_out, price_error, price_ratio

pytestmark = pytest.mark.integration

TRADER = derived_address("dex-test-trader")


@pytest.fixture(params=["3.0", "3.6"])
def net(request):
    """The V3.0 or V3.6 devnet (rolled back after the test)."""
    return request.getfixturevalue("chain" if request.param == "3.0" else "chain_v36")


def _balance(rpc, token: str, owner: str) -> int:
    answer = rpc.call("eth_call", {"to": token, "data": call_data("balanceOf(address)", owner)}, "latest")
    return decode_result(["uint256"], answer)[0]


def _ratio(pair, prices):
    return price_ratio(prices[pair.symbol0], pair.decimals0, prices[pair.symbol1], pair.decimals1)


def test_deploy_puts_every_pair_at_the_oracle_price(net, tmp_path):
    market = net.market
    dex = deploy_dex(net.rpc, market, data_dir=tmp_path)
    assert load_dex(tmp_path) == dex  # dex.json round trip
    symbols = {r.symbol for r in market.reserves}
    assert {frozenset((p.symbol0, p.symbol1)) for p in dex.pairs} == {frozenset(c) for c in combinations(symbols, 2)}
    assert net.rpc.call("eth_getCode", dex.factory, "latest") not in ("0x", "0x0")

    prices = oracle_prices(net.rpc, market)
    reserves = read_reserves(net.rpc, dex)
    for p in dex.pairs:
        r0, r1 = reserves[p.pair]
        assert int(p.token0, 16) < int(p.token1, 16)
        assert dex.pair(p.token1, p.token0) == p == dex.pair_of(p.symbol1, p.symbol0)
        assert (_balance(net.rpc, p.token0, p.pair), _balance(net.rpc, p.token1, p.pair)) == (r0, r1)
        num, den = _ratio(p, prices)
        # The finer side is within half a raw unit of the coarser side at the oracle price.
        if r0 <= r1:
            assert abs(2 * (r1 * den - r0 * num)) <= den, p
        else:
            assert abs(2 * (r0 * num - r1 * den)) <= num, p
        # Each side is worth the depth (the coarse side floored: under one raw unit off); stablecoin pairs deeper.
        value0 = r0 * prices[p.symbol0] / 10 ** (p.decimals0 + 8)
        stable = {p.symbol0, p.symbol1} <= dexmod.STABLECOINS
        depth = dexmod.STABLE_DEPTH_USD if stable else dexmod.DEFAULT_DEPTH_USD
        assert value0 == pytest.approx(depth, rel=1e-6), p


def test_a_swap_pays_exactly_get_amount_out_and_not_one_unit_more(net):
    dex = deploy_dex(net.rpc, net.market)
    chain = Chain(net.rpc)
    chain.set_balances([TRADER], GAS_MONEY)
    cases = [("WETH", "USDC", 100), ("USDC", "WBTC", 750_000), ("WBTC", "DAI", 3)]  # whole units in
    for symbol_in, symbol_out, units in cases:
        p = dex.pair_of(symbol_in, symbol_out)
        zero_for_one = p.symbol0 == symbol_in
        token_in, token_out = (p.token0, p.token1) if zero_for_one else (p.token1, p.token0)
        decimals_in = p.decimals0 if zero_for_one else p.decimals1
        amount_in = units * 10**decimals_in
        r0, r1 = read_reserves(net.rpc, dex)[p.pair]
        out = get_amount_out(amount_in, r0, r1) if zero_for_one else get_amount_out(amount_in, r1, r0)
        before = _balance(net.rpc, token_out, TRADER)

        def swap(amount_out, p=p, zero_for_one=zero_for_one):
            outs = (0, amount_out) if zero_for_one else (amount_out, 0)
            return Tx(TRADER, p.pair, call_data("swap(uint256,uint256,address,bytes)", *outs, TRADER, b""))

        txs = [
            Tx(TRADER, token_in, call_data("mint(address,uint256)", TRADER, amount_in)),
            Tx(TRADER, token_in, call_data("transfer(address,uint256)", p.pair, amount_in)),  # as a liquidator does
            swap(out + 1),  # one unit more breaks the pair's K check
            swap(out),
        ]
        with chain.manual_mining():
            executed = chain.execute(txs, allow_revert=True)
        assert executed.ok == [True, True, False, True], (symbol_in, symbol_out)
        assert _balance(net.rpc, token_out, TRADER) - before == out
        after = read_reserves(net.rpc, dex)[p.pair]
        assert after == ((r0 + amount_in, r1 - out) if zero_for_one else (r0 - out, r1 + amount_in))


def test_arbitrage_brings_every_pool_back_to_a_moved_oracle(net):
    market = net.market
    dex = deploy_dex(net.rpc, market)
    prices = oracle_prices(net.rpc, market)
    moved = {"WETH": prices["WETH"] * 78 // 100, "WBTC": prices["WBTC"] * 11 // 10, "AERO": prices["AERO"] // 2}
    set_prices(net.rpc, market, moved)
    before = read_reserves(net.rpc, dex)

    result = arbitrage(net.rpc, dex)  # prices from the AaveOracle

    new_prices = oracle_prices(net.rpc, market)
    assert {k: new_prices[k] for k in moved} == moved
    reserves = read_reserves(net.rpc, dex)
    for p in dex.pairs:
        r0, r1 = reserves[p.pair]
        touched = {p.symbol0, p.symbol1} & set(moved)
        if not touched:
            assert p.pair not in result.swaps and (r0, r1) == before[p.pair], p
            continue
        swap = result.swaps[p.pair]
        assert (swap.reserve0_after, swap.reserve1_after) == (r0, r1)  # on chain exactly as computed
        # One raw unit of input moves the price by about 1/r_in + 1/r_out: the best swap is within that.
        error = abs(price_error(r0, r1, *_ratio(p, new_prices)))
        assert error <= 3 / min(r0, r1), (p.symbol0, p.symbol1, error)
        assert abs(price_error(*before[p.pair], *_ratio(p, new_prices))) > 0.04  # it was well off before
    assert arbitrage(net.rpc, dex).block is None  # nothing left to do


def test_arbitrage_undoes_a_whale_sized_trade(net):
    dex = deploy_dex(net.rpc, net.market)
    prices = oracle_prices(net.rpc, net.market)
    p = dex.pair_of("WETH", "USDC")
    weth_in = 1_000_000 * 10**8 * 10**18 // prices["WETH"]  # $1M of WETH sold into a $2M-a-side pool
    chain = Chain(net.rpc)
    chain.set_balances([TRADER], GAS_MONEY)
    r0, r1 = read_reserves(net.rpc, dex)[p.pair]
    weth_is_0 = p.symbol0 == "WETH"
    reserve_in, reserve_out = (r0, r1) if weth_is_0 else (r1, r0)
    out = get_amount_out(weth_in, reserve_in, reserve_out)
    assert 0.66 < out / (weth_in * reserve_out / reserve_in) < 0.67  # a third lost to the pool: real slippage
    outs = (0, out) if weth_is_0 else (out, 0)
    weth = p.token0 if weth_is_0 else p.token1
    txs = [
        Tx(TRADER, weth, call_data("mint(address,uint256)", p.pair, weth_in)),
        Tx(TRADER, p.pair, call_data("swap(uint256,uint256,address,bytes)", *outs, TRADER, b"")),
    ]
    with chain.manual_mining():
        chain.execute(txs)
    assert abs(price_error(*read_reserves(net.rpc, dex)[p.pair], *_ratio(p, prices))) > 0.5

    result = arbitrage(net.rpc, dex, prices)
    assert set(result.swaps) == {p.pair}
    r0, r1 = read_reserves(net.rpc, dex)[p.pair]
    assert abs(price_error(r0, r1, *_ratio(p, prices))) <= 3 / min(r0, r1)
    assert _balance(net.rpc, weth, ARBITRAGEUR) > 0  # the arbitrageur bought the cheap WETH back
