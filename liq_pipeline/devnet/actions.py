"""What a test or the simulator does to a running devnet: prices, time, liquidations, ground-truth reads.

Every writing helper here mines its own block (manual mining, timestamp = previous + BLOCK_TIME) and checks the
outcome, so callers never race anvil's background automining. Bulk variants return `Tx` lists for the caller to
batch (the simulator puts a whole block's activity in one batch).
"""

from __future__ import annotations

import dataclasses as dc
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass
from typing import Any, NamedTuple

from eth_utils import keccak, to_checksum_address

from ..chain.abi import decoded_logs
from ..chain.discovery import discover_market, read_market_state
from ..chain.ground_truth import user_account_data
from ..chain.positions import read_positions
from ..chain.rpc import RpcClient
from ..risk.liquidation import MUST_NOT_LEAVE_DUST, liquidation_outcome
from ..risk.market import user_positions
from ..risk.versions import rules_for
from .abi import call_data, decode_result, selector
from .accounts import GAS_MONEY, LIQUIDATOR
from .anvil import BLOCK_TIME
from .errors import DevnetError
from .market import Market
from .rpc import Rpc
from .txs import Chain, Executed, Tx

MAX_UINT = 2**256 - 1
ANSWER_UPDATED_TOPIC = "0x" + keccak(text="AnswerUpdated(int256,uint256,uint256)").hex()
LIQUIDATION_CALL_TOPIC = (
    "0x" + keccak(text="LiquidationCall(address,address,address,uint256,uint256,address,bool)").hex()
)

_USER_RESERVE = "getUserReserveData(address,address)"  # 9 static words: balances, rates, timestamp, flag


class UserAccountData(NamedTuple):
    """Pool.getUserAccountData: base-currency amounts (USD, 8 decimals), bps, and the health factor in wad."""

    total_collateral_base: int
    total_debt_base: int
    available_borrows_base: int
    current_liquidation_threshold: int
    ltv: int
    health_factor: int

    @property
    def hf(self) -> float:
        return self.health_factor / 1e18


def _rpc_of(client: Any) -> Rpc:
    """Accept our Rpc or a web3 instance over HTTP (tests hold both)."""
    if isinstance(client, Rpc):
        return client
    uri = getattr(getattr(client, "provider", None), "endpoint_uri", None)
    if not uri:
        raise TypeError("expected an Rpc or a Web3 with an HTTP provider")
    cached = getattr(client, "_liq_devnet_rpc", None)
    if cached is None or cached.url != str(uri):
        cached = Rpc(str(uri))
        client._liq_devnet_rpc = cached
    return cached


def _block_tag(block: int | str) -> str:
    return hex(block) if isinstance(block, int) else block


def _address_call(signature: str, address: str) -> str:
    """Calldata of a one-address function, by hand: eth-abi costs ~40 us per call, a scan makes thousands."""
    return selector(signature) + "0" * 24 + address.lower().removeprefix("0x")


def _words(answer: str, count: int) -> list[int]:
    """The first `count` 32-byte words of an eth_call answer, as integers (static return types only)."""
    body = answer.removeprefix("0x")
    if len(body) < 64 * count:
        raise ValueError(f"short eth_call answer ({len(body) // 2} bytes, {count} words expected)")
    return [int(body[64 * k : 64 * (k + 1)], 16) for k in range(count)]


def account_data(client: Any, pool: str, users: Sequence[str], block: int | str = "latest") -> list[UserAccountData]:
    """getUserAccountData for many users in one JSON-RPC batch of eth_call (chunked), in `users` order (the chain
    reader's ground truth, in the devnet's shape)."""
    truth = user_account_data(_rpc_of(client), pool, list(users), block)
    return [UserAccountData(*astuple(truth[u])) for u in users]


def user_emodes(client: Any, pool: str, users: Sequence[str], block: int | str = "latest") -> list[int]:
    rpc, tag = _rpc_of(client), _block_tag(block)
    answers = rpc.batch(
        [("eth_call", [{"to": pool, "data": _address_call("getUserEMode(address)", u)}, tag]) for u in users]
    )
    return [int(a, 16) for a in answers]


def user_configurations(client: Any, pool: str, users: Sequence[str], block: int | str = "latest") -> list[int]:
    """The user configuration bitmaps: bit 2*id = borrowing reserve id, bit 2*id+1 = using it as collateral."""
    rpc, tag = _rpc_of(client), _block_tag(block)
    data = [_address_call("getUserConfiguration(address)", u) for u in users]
    answers = rpc.batch([("eth_call", [{"to": pool, "data": d}, tag]) for d in data])
    return [int(a, 16) for a in answers]


@dataclass(frozen=True)
class UserReserve:
    symbol: str
    a_token_balance: int
    variable_debt: int
    stable_debt: int
    collateral_enabled: bool


def user_reserves(
    client: Any, market: Market, users: Sequence[str], block: int | str = "latest"
) -> list[dict[str, UserReserve]]:
    """AaveProtocolDataProvider.getUserReserveData for every (user, reserve), one batch."""
    rpc, tag = _rpc_of(client), _block_tag(block)
    requests = [
        ("eth_call", [{"to": market.data_provider, "data": call_data(_USER_RESERVE, r.asset, u)}, tag])
        for u in users
        for r in market.reserves
    ]
    answers = iter(rpc.batch(requests))
    out = []
    for _ in users:
        legs = {}
        for r in market.reserves:
            values = _words(next(answers), 9)
            legs[r.symbol] = UserReserve(r.symbol, values[0], values[2], values[1], bool(values[8]))
        out.append(legs)
    return out


def oracle_prices(client: Any, market: Market, block: int | str = "latest") -> dict[str, int]:
    """AaveOracle prices (what the Pool uses), by symbol, 8-decimal USD."""
    assets = [r.asset for r in market.reserves]
    data = call_data("getAssetsPrices(address[])", assets)
    answer = _rpc_of(client).call("eth_call", {"to": market.oracle, "data": data}, _block_tag(block))
    (prices,) = decode_result(["uint256[]"], answer)
    return {r.symbol: int(p) for r, p in zip(market.reserves, prices, strict=True)}


# --- prices --------------------------------------------------------------------------------------------------


def price_txs(market: Market, prices: Mapping[str, int]) -> list[Tx]:
    """setAnswer on each symbol's feed (8-decimal USD); each emits Chainlink's AnswerUpdated."""
    reserves = market.by_symbol
    return [
        Tx(market.admin, reserves[s].aggregator, call_data("setAnswer(int256)", int(p)), label=f"price {s}")
        for s, p in prices.items()
    ]


def set_prices(rpc: Rpc, market: Market, prices: Mapping[str, int]) -> Executed:
    """New feed answers in one mined block. AaveOracle.getAssetPrice reads them from that block on."""
    chain = Chain(rpc)
    with chain.manual_mining():
        return chain.execute(price_txs(market, prices), timestamp=chain.latest_timestamp() + BLOCK_TIME)


def set_price(rpc: Rpc, market: Market, symbol: str, price: int) -> Executed:
    return set_prices(rpc, market, {symbol: price})


# --- time ----------------------------------------------------------------------------------------------------


def advance_time(rpc: Rpc, seconds: int) -> int:
    """One block `seconds` after the latest (interest accrues by timestamp). Returns the new timestamp.

    The devnet keeps anvil's block-timestamp interval at 2 s, under which evm_increaseTime is ignored: the jump
    goes through evm_setNextBlockTimestamp instead.
    """
    chain = Chain(rpc)
    target = chain.latest_timestamp() + max(1, int(seconds))
    chain.mine(target)
    return target


def mine_blocks(rpc: Rpc, count: int, block_time: int = BLOCK_TIME) -> int:
    """`count` empty blocks `block_time` seconds apart (Base makes one every 2 s). Returns the last number."""
    chain = Chain(rpc)
    # anvil_mine, not 3 calls a block (measured: ~20 ms a block, 6 min for 20,000), in chunks that answer well
    # within the client's timeout
    for chunk in range(0, count, MINE_CHUNK):
        rpc.call("evm_setNextBlockTimestamp", hex(chain.latest_timestamp() + block_time))
        rpc.call("anvil_mine", hex(min(MINE_CHUNK, count - chunk)), hex(block_time))
    return chain.block_number()


MINE_CHUNK = 500


# --- liquidations --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiquidationPick:
    user: str
    collateral: str  # symbol
    debt: str  # symbol
    debt_amount: int  # the user's whole variable + stable debt in that asset, token units
    debt_to_cover: int = MAX_UINT  # what liquidationCall is sent with (max uint: "as much as allowed")


def pick_liquidations(
    client: Any, market: Market, users: Sequence[str], prices: Mapping[str, int], block: int | str = "latest"
) -> list[LiquidationPick]:
    """For each user, the largest enabled collateral and the largest debt by value (what a simple bot takes)."""
    picks = []
    reserves = market.by_symbol
    counts_lt0 = market.protocol_version == "3.6"
    for user, legs in zip(users, user_reserves(client, market, users, block), strict=True):

        def value(symbol: str, amount: int) -> int:
            return amount * prices[symbol] // 10 ** reserves[symbol].decimals

        collaterals = [
            (value(s, leg.a_token_balance), s)
            for s, leg in legs.items()
            # V3.6 counts (and liquidates) an enabled collateral whose reserve LT is 0 (e-mode-only collateral)
            if leg.collateral_enabled and leg.a_token_balance and (reserves[s].liquidation_threshold or counts_lt0)
        ]
        debts = [
            (value(s, leg.variable_debt + leg.stable_debt), s, leg.variable_debt + leg.stable_debt)
            for s, leg in legs.items()
            if leg.variable_debt + leg.stable_debt
        ]
        if collaterals and debts:
            _, collateral = max(collaterals)
            _, debt, amount = max(debts)
            picks.append(LiquidationPick(user, collateral, debt, amount))
    return picks


def liquidation_txs(market: Market, liquidator: str, picks: Sequence[LiquidationPick]) -> list[Tx]:
    """Mint the liquidator enough of each debt asset, approve the Pool, then liquidationCall with each pick's
    debtToCover (max uint by default). On V3.6 the call goes through L2Pool's compact
    liquidationCall(bytes32,bytes32)."""
    reserves, pool = market.by_symbol, market.pool
    need: dict[str, int] = {}
    for pick in picks:
        amount = pick.debt_amount * 2 + 1 if pick.debt_to_cover == MAX_UINT else pick.debt_to_cover + 1
        need[pick.debt] = need.get(pick.debt, 0) + amount
    txs = []
    for symbol, amount in need.items():
        asset = reserves[symbol].asset
        calls = (
            ("mint", "mint(address,uint256)", (liquidator, amount)),
            ("approve", "approve(address,uint256)", (pool, MAX_UINT)),
        )
        for what, signature, args in calls:
            txs.append(Tx(liquidator, asset, call_data(signature, *args), label=f"liquidator {what} {symbol}"))
    compact = market.protocol_version == "3.6"
    for pick in picks:
        if compact:
            args1, args2 = l2_liquidation_args(
                reserves[pick.collateral].reserve_id, reserves[pick.debt].reserve_id, pick.user, pick.debt_to_cover
            )
            data = call_data("liquidationCall(bytes32,bytes32)", args1, args2)
        else:
            data = call_data(
                "liquidationCall(address,address,address,uint256,bool)",
                reserves[pick.collateral].asset,
                reserves[pick.debt].asset,
                pick.user,
                pick.debt_to_cover,
                False,
            )
        txs.append(Tx(liquidator, pool, data, label=f"liquidationCall {pick.user}"))
    return txs


UINT128_MAX = 2**128 - 1


def l2_liquidation_args(
    collateral_id: int, debt_id: int, user: str, debt_to_cover: int, receive_a_token: bool = False
) -> tuple[bytes, bytes]:
    """L2Encoder.encodeLiquidationCall, locally (CalldataLogic.decodeLiquidationCallParams is the reverse):
    args1 = collateral id | debt id << 16 | user << 32; args2 = debtToCover as uint128 (uint128 max = uint256
    max) | receiveAToken << 128."""
    if debt_to_cover >= UINT128_MAX and debt_to_cover != MAX_UINT:
        raise ValueError("debt_to_cover does not fit the compact call's uint128")
    short = UINT128_MAX if debt_to_cover == MAX_UINT else debt_to_cover
    args1 = collateral_id | debt_id << 16 | int(user, 16) << 32
    args2 = short | int(receive_a_token) << 128
    return args1.to_bytes(32, "big"), args2.to_bytes(32, "big")


@dataclass(frozen=True)
class LiquidationEvent:
    collateral_asset: str
    debt_asset: str
    user: str
    debt_to_cover: int
    liquidated_collateral_amount: int
    liquidator: str
    receive_a_token: bool
    block: int
    transaction_hash: str


def liquidation_events(logs: Sequence[dict[str, Any]], pool: str) -> list[LiquidationEvent]:
    """LiquidationCall events of the Pool proxy among raw logs."""
    return [
        LiquidationEvent(
            collateral,
            debt,
            user,
            covered,
            amount,
            to_checksum_address(liquidator),
            receive,
            int(log["blockNumber"], 16),
            log["transactionHash"],
        )
        for (collateral, debt, user), (covered, amount, liquidator, receive), log in decoded_logs(
            logs, pool, LIQUIDATION_CALL_TOPIC, ["uint256", "uint256", "address", "bool"]
        )
    ]


def liquidate(
    rpc: Rpc,
    market: Market,
    user: str,
    *,
    liquidator: str = LIQUIDATOR,
    collateral: str | None = None,
    debt: str | None = None,
) -> LiquidationEvent:
    """Liquidate `user` with debtToCover = max uint, in its own block. Raises TxFailed if the Pool refuses
    (health factor >= 1, nothing to seize)."""
    prices = oracle_prices(rpc, market)
    picks = pick_liquidations(rpc, market, [user], prices)
    if not picks:
        raise DevnetError(f"{user} has no enabled collateral or no debt to liquidate")
    pick = picks[0]
    if collateral or debt:
        amount = pick.debt_amount if not debt else _debt_of(rpc, market, user, debt)
        pick = LiquidationPick(user, collateral or pick.collateral, debt or pick.debt, amount)
    chain = Chain(rpc)
    chain.set_balances([liquidator], GAS_MONEY)
    with chain.manual_mining():
        done = chain.execute(
            liquidation_txs(market, liquidator, [pick]), timestamp=chain.latest_timestamp() + BLOCK_TIME
        )
    events = liquidation_events(done.logs, market.pool)
    if len(events) != 1:  # a successful liquidationCall emits exactly one LiquidationCall
        raise DevnetError(f"liquidation of {user} emitted {len(events)} LiquidationCall events")
    return events[0]


def _debt_of(rpc: Rpc, market: Market, user: str, symbol: str) -> int:
    leg = user_reserves(rpc, market, [user])[0][symbol]
    return leg.variable_debt + leg.stable_debt


# --- liquidations chosen with the exact model ------------------------------------------------------------------


@dataclass(frozen=True)
class ChosenLiquidation:
    collateral_id: int
    debt_id: int
    debt_to_cover: int  # MAX_UINT or an amount the Pool accepts
    debt_repaid: int  # predicted, token units of the debt asset
    reserve_debt: int  # the user's debt in that reserve before


def _accepted(position: Any, states: Sequence[Any], collateral_id: int, debt_id: int, amount: int, liquidator: str):
    """The outcome under the first state if every state (price orders within the block) accepts it, else None."""
    first = None
    for state in states:
        outcome = liquidation_outcome(position, state, collateral_id, debt_id, amount, liquidator=liquidator)
        if not outcome.ok:
            return None
        first = first or outcome
    return first


def choose_liquidation(
    position: Any, states: Sequence[Any], liquidator: str, search_steps: int = 64
) -> ChosenLiquidation | None:
    """The (collateral, debt, debtToCover) that repays the most debt (by value) among the liquidationCalls every
    one of `states` (risk.market.MarketState: the block's possible prices, indices at its timestamp) accepts,
    predicted with risk.liquidation.liquidation_outcome. Per pair, max uint when accepted; when refused (V3.3+
    MustNotLeaveDust: the close factor's cap would leave < $1,000), the largest amount accepted, by bisection,
    backed off 1 % so that the leftovers are not on the $1,000 edge. None when nothing is accepted."""
    first_state = states[0]
    collaterals = [r for r, leg in position.legs.items() if leg.collateral_enabled and leg.scaled_atoken]
    debts = [r for r, leg in position.legs.items() if leg.scaled_variable_debt or leg.stable_debt]
    best: tuple[int, int, int, int, ChosenLiquidation] | None = None
    for collateral_id in sorted(collaterals):
        for debt_id in sorted(debts):
            outcome = _accepted(position, states, collateral_id, debt_id, MAX_UINT, liquidator)
            amount = MAX_UINT
            if outcome is None:
                probe = liquidation_outcome(
                    position, first_state, collateral_id, debt_id, MAX_UINT, liquidator=liquidator
                )
                if probe.reason != MUST_NOT_LEAVE_DUST or probe.max_liquidatable_debt <= 1:
                    continue
                low, high = 0, probe.max_liquidatable_debt  # accepted(low) (0: none yet), refused(high)
                for _ in range(search_steps):
                    if high - low <= 1:
                        break
                    middle = (low + high) // 2
                    if _accepted(position, states, collateral_id, debt_id, middle, liquidator) is not None:
                        low = middle
                    else:
                        high = middle
                if low == 0:
                    continue
                amount = low - low // 100
                outcome = _accepted(position, states, collateral_id, debt_id, amount, liquidator)
                if outcome is None:
                    amount = low
                    outcome = _accepted(position, states, collateral_id, debt_id, amount, liquidator)
                if outcome is None:
                    continue
            debt = first_state.by_id[debt_id]
            value = outcome.debt_repaid * debt.price // debt.unit
            chosen = ChosenLiquidation(collateral_id, debt_id, amount, outcome.debt_repaid, outcome.user_reserve_debt)
            key = (value, outcome.debt_repaid, -collateral_id, -debt_id, chosen)
            if best is None or key[:4] > best[:4]:
                best = key
    return best[4] if best else None


class LiquidationPlanner:
    """The competitor's eyes: positions and market state read with the chain reader (chain.discovery, positions)
    under the rules of the devnet's protocol version, and each liquidation chosen with risk.liquidation."""

    def __init__(self, rpc: Rpc, market: Market):
        self.devnet_market = market
        self.rules = rules_for(market.protocol_version)
        self.reader = RpcClient(rpc.url)
        head = int(rpc.call("eth_blockNumber"), 16)
        self.market = discover_market(self.reader, market.addresses_provider, head, self.rules)
        self.symbol = {r.reserve_id: r.symbol for r in market.reserves}

    def close(self) -> None:
        self.reader.close()

    def plan(
        self,
        users: Sequence[str],
        block: int,
        timestamp: int,
        new_prices: Mapping[str, int],
        liquidator: str,
        *,
        behind_updates: bool = False,
        positions_at: int | str | None = None,
    ) -> tuple[list[LiquidationPick], list[str]]:
        """(the picks, users with nothing to seize: debt without enabled collateral) for a liquidation block at
        `timestamp` following `block`; `new_prices` (by symbol) are feed answers published in that block, whose
        order against the liquidation is not guaranteed: a pick must be accepted under both price sets.
        `behind_updates`: the liquidation is known to run behind them (a paced block, whose updates tip at the top:
        devnet/competitors.py): the new prices only (both orders refuse every user the update itself pushes below
        1). Positions are read at `positions_at` ("pending": with the pool's transactions; default `block`)."""
        if not users:
            return [], []
        state = read_market_state(self.reader, self.market, block, self.rules)
        state = dc.replace(state, timestamp=timestamp)
        states = [state]
        by_symbol = {r.symbol: r.reserve_id for r in self.devnet_market.reserves}
        moved = {by_symbol[s]: int(p) for s, p in new_prices.items() if s in by_symbol}
        if any(state.by_id[r].price != p for r, p in moved.items()):
            reserves = tuple(dc.replace(r, price=moved.get(r.reserve_id, r.price)) for r in state.reserves)
            repriced = dc.replace(state, reserves=reserves)
            states = [repriced] if behind_updates else [repriced, state]  # most likely: prices first (sent first)
        at = block if positions_at is None else positions_at
        frame = read_positions(self.reader, self.market, users, at, self.rules)
        positions = {p.user.lower(): p for p in user_positions(frame, state.reserve_ids)}
        picks, hopeless = [], []
        for user in users:
            position = positions.get(user.lower())
            has_collateral = position is not None and any(
                leg.collateral_enabled and leg.scaled_atoken for leg in position.legs.values()
            )
            if not has_collateral:
                hopeless.append(user)
                continue
            chosen = choose_liquidation(position, states, liquidator)
            if chosen is None:
                continue
            picks.append(
                LiquidationPick(
                    user,
                    self.symbol[chosen.collateral_id],
                    self.symbol[chosen.debt_id],
                    chosen.reserve_debt,
                    chosen.debt_to_cover,
                )
            )
        return picks, hopeless
