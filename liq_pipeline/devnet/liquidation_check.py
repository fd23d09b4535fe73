"""Predicted liquidations against the devnet's Pool, one per block, compared exactly (`liq devnet verify-liquidations`).

For one (user, collateral, debt, debtToCover, receiveAToken): read the market state and the user's position at
the head block, predict the call with `risk.liquidation.liquidation_outcome` for the next block's timestamp, send
it in its own block (V3.0: `Pool.liquidationCall`; V3.6: L2Pool's compact `liquidationCall(bytes32,bytes32)`
encoded by the market's L2Encoder), and compare: the LiquidationCall event's debtToCover and
liquidatedCollateralAmount, the user's scaled aToken and variable debt balances and collateral/borrowing flags in
every reserve it touches, the liquidator's aTokens (receiveAToken), and on V3.6 the reserves' deficits. A predicted
revert must revert, with the predicted error (V3.0: the Error(string) code; V3.6: the custom error, by selector)
read by an eth_call at the block holding the reverted transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..chain.discovery import discover_market, read_market_state
from ..chain.pool_errors import ERROR_STRING, POOL_ERRORS
from ..chain.positions import read_positions
from ..chain.rpc import RpcClient, RpcError
from ..risk import liquidation as L
from ..risk.liquidation import LiquidationOutcome, liquidation_outcome
from ..risk.market import Leg, MarketState, UserPosition, user_positions
from ..risk.versions import rules_for
from ..risk.wadray import RAY, UINT256_MAX, mul_div_ceil
from .abi import call_data, decode_result
from .accounts import GAS_MONEY, LIQUIDATOR
from .actions import liquidation_events, user_configurations
from .anvil import BLOCK_TIME
from .market import Market
from .rpc import Rpc
from .txs import CALL_GAS, Chain, Tx
from .v36.deploy import Deployment
from .v36.seed import UserPlan, seed_examples, user_address

STABLES = ("USDC", "DAI", "USDT", "USDBC", "GHO", "EURC")
CUSTOM_ERRORS = POOL_ERRORS  # the Pool's custom errors by selector (chain/pool_errors.py)
# Price moves (factor of the current oracle price) that push a share of the borrowers below HF 1, some deeply
# (capped collateral, deficits), and stablecoin e-mode users too (DAI up). Symbols a market lacks are skipped.
SHOCK = {"WETH": 0.78, "WBTC": 0.75, "wstETH": 0.722, "AERO": 0.5, "DAI": 1.04}

CASES_30 = ("half_close", "full_close_hf_le_095", "capped_collateral", "emode_bonus", "receive_a_token_true")
CASES_30 += ("receive_a_token_false",)
CASES_33 = ("full_close_under_2000", "dust_reverts", "dust_exceptions", "deficits")


def revert_reason(error: RpcError) -> str:
    """The Pool's revert as `liquidation_outcome` names it: the Error(string) text (V3.0) or the custom error's
    name (V3.4+); the raw data when neither."""
    data = error.data if isinstance(error.data, str) else (error.data or {}).get("data", "")
    data = data or ""
    if data.startswith(ERROR_STRING):
        (reason,) = decode_result(["string"], "0x" + data[len(ERROR_STRING) :])
        return reason
    return CUSTOM_ERRORS.get(data[:10], data or str(error))


@dataclass
class Attempt:
    """One liquidationCall, predicted and sent."""

    user: str
    collateral: int
    debt: int
    amount: int
    receive: bool
    predicted: LiquidationOutcome
    position: UserPosition
    state: MarketState
    ok: bool  # the Pool liquidated
    block: int
    reason: str | None = None  # the Pool's revert, decoded
    problems: list[tuple] = field(default_factory=list)

    @property
    def matched(self) -> bool:
        return not self.problems


class LiquidationChecker:
    """Predict, send and compare liquidations on a devnet market (V3.0 Pool or V3.6 L2Pool)."""

    def __init__(self, devnet_rpc: Rpc, reader: RpcClient, market: Market, l2_encoder: str | None = None):
        self.rpc, self.reader, self.devnet_market = devnet_rpc, reader, market
        self.version = market.protocol_version
        self.rules = rules_for(self.version)
        self.pool = market.pool
        self.l2_encoder = l2_encoder
        if self.version != "3.0" and not l2_encoder:
            raise ValueError("a V3.6 market needs its L2Encoder address (v36.json)")
        self.reserves = {r.reserve_id: r for r in market.reserves}
        self.symbol = {r.reserve_id: r.symbol for r in market.reserves}
        self.market = discover_market(reader, market.addresses_provider, self.head(), self.rules)
        self.stables = tuple(s for s in STABLES if s in market.by_symbol)

    # -- reads ------------------------------------------------------------------------------------------------

    def head(self) -> int:
        return int(self.reader.call("eth_blockNumber"), 16)

    def timestamp(self, block: int | str) -> int:
        tag = hex(block) if isinstance(block, int) else block
        return int(self.reader.call("eth_getBlockByNumber", tag, False)["timestamp"], 16)

    def snapshot(self, users: Sequence[str]) -> tuple[int, MarketState, dict[str, UserPosition]]:
        head = self.head()
        state = read_market_state(self.reader, self.market, head, self.rules, self.stables)
        frame = read_positions(self.reader, self.market, list(users), head, self.rules)
        return head, state, {p.user.lower(): p for p in user_positions(frame, state.reserve_ids)}

    def scaled(self, user: str, reserve_ids: Sequence[int], block: int) -> dict[int, tuple[int, int]]:
        """(scaled aToken, scaled variable debt) per reserve, from the tokens (the position reader skips legs whose
        flags are off)."""
        data = call_data("scaledBalanceOf(address)", user)
        requests = [
            ("eth_call", [{"to": token, "data": data}, hex(block)])
            for rid in reserve_ids
            for token in (self.reserves[rid].a_token, self.reserves[rid].variable_debt_token)
        ]
        answers = [int(a, 16) for a in self.reader.batch(requests)]
        return {rid: (answers[2 * k], answers[2 * k + 1]) for k, rid in enumerate(reserve_ids)}

    def liquidator_position(self, liquidator: str, collateral: int, block: int) -> UserPosition:
        """The liquidator's collateral flags and its exact scaled aTokens of `collateral` (the position reader skips
        legs whose flags are off, and a liquidator may hold aTokens it has not enabled)."""
        config = user_configurations(self.rpc, self.pool, [liquidator], block)[0]
        scaled = self.scaled(liquidator, [collateral], block)[collateral][0]
        legs = {
            rid: Leg(
                scaled_atoken=scaled if rid == collateral else 0, collateral_enabled=bool(config >> (2 * rid + 1) & 1)
            )
            for rid in self.reserves
        }
        return UserPosition(liquidator, 0, legs)

    def deficits(self, block: int) -> dict[int, int]:
        """Pool.getReserveDeficit per reserve id, as the chain reader reads it with the reserves (3.3+)."""
        state = read_market_state(self.reader, self.market, block, self.rules, self.stables)
        return {r.reserve_id: r.deficit for r in state.reserves}

    # -- writes -----------------------------------------------------------------------------------------------

    def fund_liquidator(self, liquidator: str = LIQUIDATOR) -> None:
        fund_liquidator(self.rpc, self.devnet_market, liquidator)

    def call_data(self, user: str, collateral: int, debt: int, amount: int, receive: bool) -> str:
        coll, dbt = self.reserves[collateral].asset, self.reserves[debt].asset
        if self.l2_encoder is None:
            signature = "liquidationCall(address,address,address,uint256,bool)"
            return call_data(signature, coll, dbt, user, amount, receive)
        encoded = self.reader.call(
            "eth_call",
            {
                "to": self.l2_encoder,
                "data": call_data(
                    "encodeLiquidationCall(address,address,address,uint256,bool)", coll, dbt, user, amount, receive
                ),
            },
            "latest",
        )
        args1, args2 = decode_result(["bytes32", "bytes32"], encoded)
        return call_data("liquidationCall(bytes32,bytes32)", args1, args2)

    def send(self, data: str, sender: str = LIQUIDATOR):
        chain = Chain(self.rpc)
        with chain.manual_mining():
            return chain.execute(
                [Tx(sender, self.pool, data, gas=CALL_GAS, label="liquidationCall")],
                timestamp=chain.latest_timestamp() + BLOCK_TIME,
                allow_revert=True,
            )

    def pause(self, reserve_id: int, paused: bool, grace_seconds: int = 0) -> None:
        """PoolConfigurator.setReservePause as the pool admin; unpausing on 3.1+ starts a grace period of
        `grace_seconds` (no liquidation with the reserve until it has passed)."""
        asset = self.reserves[reserve_id].asset
        if self.rules.liquidation_grace_period:
            data = call_data("setReservePause(address,bool,uint40)", asset, paused, grace_seconds)
        else:
            data = call_data("setReservePause(address,bool)", asset, paused)
        market = self.devnet_market
        chain = Chain(self.rpc)
        with chain.manual_mining():
            chain.execute(
                [Tx(market.admin, market.pool_configurator, data, label=f"pause {self.symbol[reserve_id]}: {paused}")],
                timestamp=chain.latest_timestamp() + BLOCK_TIME,
            )

    def reason_now(self, data: str, sender: str = LIQUIDATOR) -> str:
        """The Pool's answer to `data` at the latest block (the one holding the reverted call: same state)."""
        try:
            self.reader.call("eth_call", {"from": sender, "to": self.pool, "data": data}, "latest")
        except RpcError as error:
            return revert_reason(error)
        return "<no revert>"

    # -- the check --------------------------------------------------------------------------------------------

    def attempt(
        self, user: str, collateral: int, debt: int, amount: int, receive: bool, sender: str = LIQUIDATOR
    ) -> Attempt:
        head, state, now = self.snapshot([user, sender])
        position = now.get(user.lower()) or UserPosition(user, 0, {})
        timestamp = self.timestamp(head) + BLOCK_TIME
        own = self.liquidator_position(sender, collateral, head)
        predicted = liquidation_outcome(position, state, collateral, debt, amount, receive, sender, timestamp, own)
        deficits_before = {r.reserve_id: r.deficit for r in state.reserves}
        data = self.call_data(user, collateral, debt, amount, receive)
        done = self.send(data, sender)
        ok = done.ok[-1]
        result = Attempt(user, collateral, debt, amount, receive, predicted, position, state, ok, done.block)
        problems = result.problems
        if not ok:
            result.reason = self.reason_now(data, sender)
            if predicted.ok:
                problems.append(("reverted, predicted a liquidation", result.reason))
            elif result.reason != predicted.revert:
                problems.append(("revert reason", result.reason, predicted.revert))
            return result
        if not predicted.ok:
            problems.append(("liquidated, predicted a revert", predicted.revert))
            return result
        events = liquidation_events(done.logs, self.pool)
        if len(events) != 1:
            problems.append(("LiquidationCall events", len(events)))
            return result
        (event,) = events
        got = (event.debt_to_cover, event.liquidated_collateral_amount, event.receive_a_token, event.user.lower())
        want = (predicted.debt_repaid, predicted.collateral_seized, receive, user.lower())
        if got != want:
            problems.append(("event", got, want))
        touched = sorted(set(position.legs) | {collateral, debt})
        after = predicted.position_after.legs
        balances = self.scaled(user, touched, done.block)
        config = user_configurations(self.rpc, self.pool, [user], done.block)[0]
        for rid in touched:
            leg = after.get(rid, Leg())
            if balances[rid] != (leg.scaled_atoken, leg.scaled_variable_debt):
                problems.append(("scaled balances", self.symbol[rid], balances[rid], leg))
            flags = (bool(config >> (2 * rid + 1) & 1), bool(config >> (2 * rid) & 1))
            if flags != (leg.collateral_enabled, bool(leg.scaled_variable_debt)):
                problems.append(("flags", self.symbol[rid], flags, leg))
        if bool(config >> (2 * debt) & 1) == predicted.debt_flag_cleared:
            problems.append(("debt flag cleared", predicted.debt_flag_cleared))
        if self.rules.dust_rule_and_deficits:
            deficits_after = self.deficits(done.block)
            created = {r: d - deficits_before[r] for r, d in deficits_after.items() if d != deficits_before[r]}
            if created != {r: d for r, d in predicted.deficit.items() if d}:
                problems.append(("deficits", created, dict(predicted.deficit)))
        liquidator = self.scaled(sender, [collateral], done.block)[collateral][0]
        liquidator -= self.scaled(sender, [collateral], head)[collateral][0]
        if liquidator != (predicted.collateral_scaled if receive else 0):
            problems.append(("liquidator aTokens", liquidator, predicted.collateral_scaled))
        if receive:
            flag = bool(user_configurations(self.rpc, self.pool, [sender], done.block)[0] >> (2 * collateral + 1) & 1)
            if flag != predicted.liquidator_collateral_enabled:
                problems.append(("liquidator collateral flag", flag, predicted.liquidator_collateral_enabled))
        return result


def cases_of(attempt: Attempt) -> list[str]:
    """The cases a matched attempt exercises (keys of the command's `cases`)."""
    p, state, position = attempt.predicted, attempt.state, attempt.position
    if not p.ok:
        return ["dust_reverts"] if p.reason == L.MUST_NOT_LEAVE_DUST else []
    out = []
    full = p.max_liquidatable_debt >= p.user_reserve_debt
    out += ["half_close"] if not full else []
    if full and p.health_factor <= L.CLOSE_FACTOR_HF_THRESHOLD:
        out.append("full_close_hf_le_095")
    elif full and state.rules.small_position_full_close:  # 3.3+: the reserve's collateral or debt under $2,000
        coll, dbt = state.by_id[attempt.collateral], state.by_id[attempt.debt]
        coll_base = p.user_collateral_balance * coll.price // coll.unit
        debt_base = mul_div_ceil(p.user_reserve_debt, dbt.price, dbt.unit)
        if min(coll_base, debt_base) < L.MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD:
            out.append("full_close_under_2000")
    if p.debt_repaid < min(attempt.amount, p.max_liquidatable_debt):
        out.append("capped_collateral")  # the bonus asked for more collateral than the user had
    if p.deficit:
        out.append("deficits")
    category = position.emode_category
    if category and state.in_emode(category, attempt.collateral):
        out.append("emode_bonus")
    out.append("receive_a_token_true" if attempt.receive else "receive_a_token_false")
    if state.rules.dust_rule_and_deficits:  # a leftover under $1,000 allowed: the debt or the collateral cleared
        coll, dbt = state.by_id[attempt.collateral], state.by_id[attempt.debt]
        coll_left = p.user_collateral_balance - p.collateral_seized - p.protocol_fee
        debt_left = p.user_reserve_debt - p.debt_repaid
        small = (0 < coll_left * coll.price // coll.unit < L.MIN_LEFTOVER_BASE) or (
            0 < debt_left * dbt.price // dbt.unit < L.MIN_LEFTOVER_BASE
        )
        if small and (coll_left == 0 or debt_left == 0):
            out.append("dust_exceptions")
    return out


def enabled_collaterals(position: UserPosition) -> list[int]:
    return sorted(r for r, leg in position.legs.items() if leg.collateral_enabled and leg.scaled_atoken)


def borrowed(position: UserPosition) -> list[int]:
    return sorted(r for r, leg in position.legs.items() if leg.scaled_variable_debt)


def amounts_for(position: UserPosition, state: MarketState, collateral: int, debt: int) -> list[int]:
    """debtToCover values to rotate through: max uint, the close factor's cap and around it, the whole reserve
    debt, fractions (dust on small positions), 1 wei."""
    owed = position.legs[debt].scaled_variable_debt * state.debt_index[debt] // RAY
    cap = liquidation_outcome(position, state, collateral, debt, UINT256_MAX).max_liquidatable_debt
    return [UINT256_MAX, owed // 2, cap, owed // 5, owed, owed * 9 // 10, cap + 1, owed // 3, 1, max(cap - 1, 0)]


def shocked_prices(prices: Mapping[str, int], shock: Mapping[str, float] = SHOCK) -> dict[str, int]:
    return {s: int(Decimal(prices[s]) * Decimal(str(f))) for s, f in shock.items() if s in prices}


def summary_counts(version: str) -> dict[str, Any]:
    """Every case key; None for the cases the version does not have (3.0: no $2,000 rule, dust rule, deficit)."""
    counts: dict[str, Any] = dict.fromkeys((*CASES_30, *CASES_33), 0)
    if not rules_for(version).dust_rule_and_deficits:
        counts.update(dict.fromkeys(CASES_33, None))
    return counts


# V3.6: borrowers placed for the cases a bulk-seeded market rarely holds after SHOCK (from the V3.6 outcome test).
CASE_PLANS_36: tuple[tuple[str, int, dict[str, str], dict[str, str]], ...] = (
    # (role, e-mode, supplies, borrows) in whole tokens
    ("deficit", 0, {"AERO": "3000"}, {"USDC": "1700", "DAI": "50"}),  # capped collateral, deficits
    ("deficit-two", 0, {"AERO": "2000", "WETH": "0.3"}, {"USDC": "1500", "DAI": "200"}),
    ("half", 0, {"WETH": "5"}, {"USDC": "7000", "DAI": "2800"}),  # both reserves >= $2,000, HF > 0.95
    ("small-debt-reserve", 0, {"WETH": "4"}, {"USDC": "6200", "DAI": "1850"}),  # DAI under $2,000
    ("small-coll-reserve", 0, {"WETH": "0.8", "WBTC": "0.1"}, {"USDC": "7300"}),  # WETH under $2,000
    ("small", 0, {"WETH": "0.5"}, {"USDC": "1000"}),  # dust reverts and exceptions
    ("wbtc-dai", 0, {"WBTC": "0.1"}, {"DAI": "5700"}),  # HF <= 0.95
    ("emode-stable", 1, {"USDC": "10000"}, {"DAI": "9250"}),  # e-mode bonus 1 %
    ("emode-lt0-deficit", 3, {"wstETH": "1"}, {"USDC": "2650"}),  # e-mode 3 on LT-0 collateral, deficit
    ("emode-eth", 2, {"wstETH": "3", "WETH": "1"}, {"WETH": "4.1"}),
    ("deficit-burn", 0, {"WETH": "1"}, {"USDC": "2300", "DAI": "50"}),  # deficit in another debt too
)


def seed_case_users_36(rpc: Rpc, market: Market, l2_encoder: str, tag: str) -> list[str]:
    """Seed CASE_PLANS_36 as new users (roles prefixed with `tag`, so a second run gets new addresses)."""
    plans = tuple(
        UserPlan(f"{tag}:{role}", emode=emode, supplies=supplies, borrows=borrows)
        for role, emode, supplies, borrows in CASE_PLANS_36
        if all(s in market.by_symbol for s in (*supplies, *borrows))
    )
    seed_examples(rpc, Deployment(market, l2_encoder, (), ""), plans)
    return [user_address(p.role) for p in plans]


def fund_liquidator(rpc: Rpc, market: Market, liquidator: str = LIQUIDATOR) -> None:
    """Gas, plenty of every reserve's token, and the Pool's allowance, for `liquidator`."""
    chain = Chain(rpc)
    chain.set_balances([liquidator], GAS_MONEY)
    txs = []
    for reserve in market.reserves:
        txs.append(Tx(liquidator, reserve.asset, call_data("mint(address,uint256)", liquidator, 10**40)))
        txs.append(Tx(liquidator, reserve.asset, call_data("approve(address,uint256)", market.pool, UINT256_MAX)))
    with chain.manual_mining():
        chain.execute(txs, timestamp=chain.latest_timestamp() + BLOCK_TIME)
