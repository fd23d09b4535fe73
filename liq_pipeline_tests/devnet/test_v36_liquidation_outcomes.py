"""risk.liquidation against the real V3.6 L2Pool: every predicted liquidation, bit for bit, and every predicted revert.

The session's V3.6 devnet gets extra borrowers (each placed for a case below), then a price shock. Liquidations
with varied (collateral, debt) pairs, debtToCover values (1 wei, small, half, the close factor's cap and one
above, the whole reserve debt, max uint), receiveAToken true and false, are predicted from the state at the block
before with `liquidation_outcome` and sent one per block through L2Pool's compact liquidationCall(bytes32,bytes32).
The cases: the $2,000 close-factor threshold (half of the total debt, or the whole reserve debt when a reserve is
small or HF <= 0.95), the $1,000 dust rule and its exceptions (debt cleared, collateral all seized), deficits when
no collateral is left, e-mode bonuses (with the e-mode-only LT-0 collateral), capped collateral, a liquidation
grace period, and the validation reverts. The LiquidationCall amounts, the user's scaled balances and flags, the
liquidator's aTokens, the reserves' deficits and the revert reasons (custom errors, by selector) must equal the
prediction exactly. A control shows the 3.5 model mispredicts some of these (the test tells versions apart).
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from liq_pipeline.chain.discovery import discover_market, read_market_state
from liq_pipeline.chain.positions import read_positions
from liq_pipeline.chain.rpc import RpcClient, RpcError
from liq_pipeline.devnet import actions
from liq_pipeline.devnet.abi import call_data
from liq_pipeline.devnet.accounts import GAS_MONEY, LIQUIDATOR
from liq_pipeline.devnet.anvil import BLOCK_TIME
from liq_pipeline.devnet.liquidation_check import CUSTOM_ERRORS, fund_liquidator
from liq_pipeline.devnet.txs import CALL_GAS, Chain, Tx
from liq_pipeline.devnet.v36.actions import (
    encode_liquidation,
    liquidate_l2,
    liquidation_grace_period,
    set_liquidation_grace_period,
)
from liq_pipeline.devnet.v36.seed import UserPlan, seed_examples
from liq_pipeline.risk import liquidation as L
from liq_pipeline.risk.exact import account_data
from liq_pipeline.risk.liquidation import liquidation_outcome
from liq_pipeline.risk.market import Leg, user_positions
from liq_pipeline.risk.versions import rules_for
from liq_pipeline.risk.wadray import UINT256_MAX, WAD

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULES = rules_for("3.6")
RULES_35 = rules_for("3.5")
ROUNDS = 6
GRACE_SECONDS = 60  # on AERO, from the first liquidation: ~30 blocks of reverts, then AERO liquidations
DUST = L.MIN_LEFTOVER_BASE
ERRORS = CUSTOM_ERRORS

# Prices after the shock (seeded at WETH 3,000, WBTC 95,000, wstETH 3,600, AERO 1.2, DAI 1): see each plan.
SHOCK = {"WETH": 2_340, "WBTC": 71_250, "wstETH": 2_600, "AERO": 0.6, "DAI": 1.04}
PLANS: tuple[UserPlan, ...] = (
    # AERO collateral first: the grace period refuses them, later rounds liquidate them.
    # $1,800 of AERO for $1,750 of debt: capped collateral, all seized, deficit in USDC and (burned) DAI.
    UserPlan("liq-deficit", supplies={"AERO": "3000"}, borrows={"USDC": "1700", "DAI": "50"}),
    # two collaterals: WETH goes first, AERO is left, then a deficit
    UserPlan("liq-deficit-two", supplies={"AERO": "2000", "WETH": "0.3"}, borrows={"USDC": "1500", "DAI": "200"}),
    UserPlan(
        "liq-three-colls",
        supplies={"WETH": "1", "WBTC": "0.02", "AERO": "1500"},
        borrows={"USDC": "2500", "DAI": "1150"},
    ),
    # HF ~0.98, both reserves >= $2,000: at most half the total debt; DAI ($2,912) under that half: all of it
    UserPlan("liq-half", supplies={"WETH": "5"}, borrows={"USDC": "7000", "DAI": "2800"}),
    # HF ~0.956: DAI ($1,924 < $2,000) closes in full, USDC by half of the total debt
    UserPlan("liq-small-debt-reserve", supplies={"WETH": "4"}, borrows={"USDC": "6200", "DAI": "1850"}),
    # HF ~0.97: WETH collateral ($1,872 < $2,000) closes in full, WBTC by half
    UserPlan("liq-small-coll-reserve", supplies={"WETH": "0.8", "WBTC": "0.1"}, borrows={"USDC": "7300"}),
    # a $1,170 position: partial repayments leave dust, the whole debt or all the collateral does not
    UserPlan("liq-small", supplies={"WETH": "0.5"}, borrows={"USDC": "1000"}),
    # HF ~0.94: full close; 1 wei of DAI seizes 0 WBTC (InvalidBurnAmount), 90 % leaves dust
    UserPlan("liq-wbtc-dai", supplies={"WBTC": "0.1"}, borrows={"DAI": "5700"}),
    # e-mode 1 (bonus 1 %): DAI debt worth more after DAI's rise, HF ~0.99, half close
    UserPlan("liq-emode-stable", emode=1, supplies={"USDC": "10000"}, borrows={"DAI": "9250"}),
    # e-mode 3 (bonus 6 %) on the LT-0 collateral alone, HF ~0.78: capped, deficit (3.5 refuses to liquidate)
    UserPlan("liq-emode-lt0-deficit", emode=3, supplies={"wstETH": "1"}, borrows={"USDC": "2650"}),
    # e-mode 2 (bonus 1 %), LT-0 collateral and WETH, HF ~0.98
    UserPlan("liq-emode-eth", emode=2, supplies={"wstETH": "3", "WETH": "1"}, borrows={"WETH": "4.1"}),
    # Kept out of the rounds, for the scripted cases:
    # outside e-mode, the LT-0 asset is no collateral: liquidating it is refused
    UserPlan("liq-lt0-outside", supplies={"wstETH": "1", "WETH": "1"}, borrows={"USDC": "2300"}),
    # $2,340 of WETH for $2,352 of debt: all USDC liquidated at once takes all the WETH, the rest of the USDC and
    # the whole DAI debt become deficits
    UserPlan("liq-deficit-burn", supplies={"WETH": "1"}, borrows={"USDC": "2300", "DAI": "50"}),
)
SCRIPTED = ("liq-lt0-outside", "liq-deficit-burn")


def _random_plans(count: int) -> list[UserPlan]:
    rng = random.Random(7)
    plans = []
    for i in range(count):
        weth = rng.choice(["0.3", "0.6", "1", "1.5", "2", "4", "0.05"])
        wbtc = rng.choice(["0", "0", "0.01", "0.03", "0.001"])
        aero = rng.choice(["0", "0", "500", "3000"])
        supplies = {"WETH": weth} | ({"WBTC": wbtc} if wbtc != "0" else {}) | ({"AERO": aero} if aero != "0" else {})
        borrow_power = float(weth) * 3000 * 0.8 + float(wbtc) * 95000 * 0.73 + float(aero) * 1.2 * 0.5
        debt = borrow_power * rng.uniform(0.75, 0.98)
        split = rng.choice([1.0, 0.6, 0.0])
        borrows = {}
        if split > 0:
            borrows["USDC"] = f"{debt * split:.2f}"
        if split < 1:
            borrows["DAI"] = f"{debt * (1 - split):.2f}"
        plans.append(UserPlan(f"liq-rand{i}", supplies=supplies, borrows=borrows))
    return plans


class Harness:
    def __init__(self, dev, reader: RpcClient):
        self.dev, self.reader = dev, reader
        self.pool = dev.market.pool
        self.market = discover_market(reader, dev.market.addresses_provider, self.head(), RULES)
        self.reserves = {r.reserve_id: r for r in dev.market.reserves}
        self.symbol = {r.reserve_id: r.symbol for r in dev.market.reserves}

    def head(self) -> int:
        return int(self.reader.call("eth_blockNumber"), 16)

    def timestamp(self, block: int | str) -> int:
        tag = hex(block) if isinstance(block, int) else block
        return int(self.reader.call("eth_getBlockByNumber", tag, False)["timestamp"], 16)

    def snapshot(self, users):
        head = self.head()
        state = read_market_state(self.reader, self.market, head, RULES)
        frame = read_positions(self.reader, self.market, users, head, RULES)
        return head, state, {p.user.lower(): p for p in user_positions(frame, state.reserve_ids)}

    def scaled(self, user: str, reserve_id: int, block: int) -> tuple[int, int]:
        """(scaled aToken, scaled variable debt) from the tokens: the position reader skips legs without flags."""
        reserve = self.reserves[reserve_id]
        data = call_data("scaledBalanceOf(address)", user)
        requests = [
            ("eth_call", [{"to": t, "data": data}, hex(block)]) for t in (reserve.a_token, reserve.variable_debt_token)
        ]
        return tuple(int(answer, 16) for answer in self.reader.batch(requests))

    def deficits(self, block: int) -> dict[int, int]:
        requests = [
            ("eth_call", [{"to": self.pool, "data": call_data("getReserveDeficit(address)", r.asset)}, hex(block)])
            for r in self.reserves.values()
        ]
        return {rid: int(a, 16) for rid, a in zip(self.reserves, self.reader.batch(requests), strict=True)}

    def grace(self, block: int) -> dict[int, int]:
        return {
            rid: liquidation_grace_period(self.dev.rpc, self.dev.deployment, s, block) for rid, s in self.symbol.items()
        }

    def compact(self, user, collateral: int, debt: int, amount: int, receive: bool) -> str:
        args1, args2 = encode_liquidation(
            self.dev.rpc, self.dev.deployment, self.symbol[collateral], self.symbol[debt], user, amount, receive
        )
        return call_data("liquidationCall(bytes32,bytes32)", args1, args2)

    def send(self, user, collateral: int, debt: int, amount: int, receive: bool, sender: str = LIQUIDATOR):
        """L2Pool.liquidationCall(bytes32, bytes32) in its own block: (ok, block, events, reason if reverted)."""
        data = self.compact(user, collateral, debt, amount, receive)
        if receive or sender != LIQUIDATOR:  # liquidate_l2 takes receiveAToken = false only
            chain = Chain(self.dev.rpc)  # fresh nonces: liquidate_l2 sends from the liquidator too
            with chain.manual_mining():
                done = chain.execute(
                    [Tx(sender, self.pool, data, gas=CALL_GAS, label="L2 liquidationCall")],
                    timestamp=chain.latest_timestamp() + BLOCK_TIME,
                    allow_revert=True,
                )
            events = actions.liquidation_events(done.logs, self.pool)
        else:
            done, events = liquidate_l2(
                self.dev.rpc,
                self.dev.deployment,
                user,
                self.symbol[collateral],
                self.symbol[debt],
                debt_to_cover=amount,
                allow_revert=True,
            )
        if done.ok[-1]:
            return True, done.block, events, None
        assert events == []
        # The reason: the same call at the block holding the reverted one (same state, same timestamp).
        with pytest.raises(RpcError) as raised:
            self.reader.call("eth_call", {"from": sender, "to": self.pool, "data": data}, "latest")
        error = raised.value
        answer = error.data if isinstance(error.data, str) else (error.data or {}).get("data", "")
        return False, done.block, events, ERRORS.get(answer[:10], answer)


def _enabled(position) -> list[int]:
    return sorted(r for r, leg in position.legs.items() if leg.collateral_enabled and leg.scaled_atoken)


def _borrowed(position) -> list[int]:
    return sorted(r for r, leg in position.legs.items() if leg.scaled_variable_debt)


def _key(outcome) -> tuple:
    if not outcome.ok:
        return (outcome.revert,)
    legs = {
        r: (leg.scaled_atoken, leg.scaled_variable_debt, leg.collateral_enabled)
        for r, leg in outcome.position_after.legs.items()
    }
    return (None, outcome.debt_repaid, outcome.collateral_seized, dict(outcome.deficit), legs)


def test_predicted_v36_liquidations_equal_the_l2_pool(chain_v36):
    dev = chain_v36
    market = dev.market
    seeded = seed_examples(dev.rpc, dev.deployment, (*PLANS, *_random_plans(24)))
    users = [u for role, u in {**dev.borrowers, **seeded}.items() if role != "liquidity-provider"]
    users = [
        u for u in dict.fromkeys([seeded[p.role] for p in PLANS] + users) if u not in {seeded[r] for r in SCRIPTED}
    ]
    decimals = 10**8
    actions.set_prices(dev.rpc, market, {s: int(p * decimals) for s, p in SHOCK.items()})
    fund_liquidator(dev.rpc, dev.market)
    aero = market.by_symbol["AERO"].reserve_id

    stats = {"liquidations": 0, "reverts": 0, "reasons": {}, "mismatches": [], "mispredicted_35": 0}
    seen = dict.fromkeys(
        (
            "half_close",
            "full_close_small_reserve",
            "full_close_low_hf",
            "capped_collateral",
            "deficit",
            "deficit_other_debt",
            "dust_exception",
            "emode_bonus",
            "lt0_collateral",
            "receive_true",
            "receive_false",
            "aero_after_grace",
            "collateral_flag_cleared",
        ),
        0,
    )
    with RpcClient(dev.node.url) as reader:
        h = Harness(dev, reader)
        grace_until = set_liquidation_grace_period(dev.rpc, dev.deployment, "AERO", GRACE_SECONDS)

        def attempt(user, collateral, debt, amount, receive, sender=LIQUIDATOR):
            head, state, now = h.snapshot([user, LIQUIDATOR])
            position = now.get(user.lower())
            timestamp = h.timestamp(head) + BLOCK_TIME
            # the reader's grace periods and deficits are the Pool's getters, reserve by reserve
            assert {r.reserve_id: r.liquidation_grace_until for r in state.reserves} == h.grace(head)
            deficits_before = h.deficits(head)
            assert {r.reserve_id: r.deficit for r in state.reserves} == deficits_before
            predicted = liquidation_outcome(position, state, collateral, debt, amount, receive, sender, timestamp)
            state35 = dataclasses.replace(state, rules=RULES_35)
            predicted35 = liquidation_outcome(position, state35, collateral, debt, amount, receive, sender, timestamp)
            ok, block, events, reason = h.send(user, collateral, debt, amount, receive, sender)
            case = (h.symbol[collateral], h.symbol[debt], amount, receive, user)
            problems = []
            if not ok:
                observed = (reason,)
                if predicted.ok or reason != predicted.revert:
                    problems.append(("revert", reason, predicted))
                else:
                    stats["reverts"] += 1
                    stats["reasons"][reason] = stats["reasons"].get(reason, 0) + 1
            else:
                if not predicted.ok:
                    problems.append(("liquidated, predicted revert", predicted.revert))
                (event,) = events
                if (event.debt_to_cover, event.liquidated_collateral_amount, event.receive_a_token) != (
                    predicted.debt_repaid,
                    predicted.collateral_seized,
                    receive,
                ):
                    problems.append(("event", event, predicted))
                config = actions.user_configurations(dev.rpc, market.pool, [user], block)[0]
                after = predicted.position_after.legs if predicted.ok else {}
                legs = {}
                for rid in sorted(set(position.legs) | {collateral, debt}):
                    want = after.get(rid, Leg())
                    got = h.scaled(user, rid, block)
                    flags = (bool(config >> (2 * rid + 1) & 1), bool(config >> (2 * rid) & 1))
                    legs[rid] = (*got, flags[0])
                    if got != (want.scaled_atoken, want.scaled_variable_debt):
                        problems.append(("scaled", h.symbol[rid], got, want))
                    if flags != (want.collateral_enabled, bool(want.scaled_variable_debt)):
                        problems.append(("flags", h.symbol[rid], flags, want))
                if bool(config >> (2 * debt) & 1) != (not predicted.debt_flag_cleared):
                    problems.append(("debt flag", predicted.debt_flag_cleared))
                deficits_after = h.deficits(block)
                created = {r: deficits_after[r] - deficits_before[r] for r in deficits_after}
                if created != {r: predicted.deficit.get(r, 0) for r in created}:
                    problems.append(("deficit", created, predicted.deficit))
                received = h.scaled(LIQUIDATOR, collateral, block)[0] - h.scaled(LIQUIDATOR, collateral, head)[0]
                if received != (predicted.collateral_scaled if receive else 0):
                    problems.append(("liquidator aTokens", received, predicted.collateral_scaled))
                observed = (
                    None,
                    event.debt_to_cover,
                    event.liquidated_collateral_amount,
                    {r: d for r, d in created.items() if d},
                    {r: leg for r, leg in legs.items() if r in after},
                )
                if not problems:
                    stats["liquidations"] += 1
                    _count(seen, predicted, state, position, collateral, debt, receive)
                    seen["aero_after_grace"] += aero in (collateral, debt)
            if problems:
                stats["mismatches"].append((case, problems))
            stats["mispredicted_35"] += _key(predicted35) != observed
            return predicted

        # 0. During the grace period: AERO collateral cannot be liquidated (nor could AERO debt).
        for role in ("liq-deficit", "liq-deficit-two"):
            predicted = attempt(seeded[role], aero, market.by_symbol["USDC"].reserve_id, UINT256_MAX, False)
            assert predicted.revert == L.GRACE_PERIOD

        # 1. Rounds over every borrower still liquidatable: varied pairs, amounts and receiveAToken.
        step = 0
        for _ in range(ROUNDS):
            _, state, now = h.snapshot(users)
            victims = [
                p for p in now.values() if _enabled(p) and _borrowed(p) and account_data(p, state).health_factor < WAD
            ]
            for victim in victims:
                collaterals, debts = _enabled(victim), _borrowed(victim)
                collateral = collaterals[step % len(collaterals)]
                debt = debts[(step // 3) % len(debts)]
                owed = victim.legs[debt].scaled_variable_debt * state.debt_index[debt] // 10**27
                cap = liquidation_outcome(victim, state, collateral, debt, UINT256_MAX).max_liquidatable_debt
                amounts = [
                    UINT256_MAX,
                    owed // 2,
                    owed // 5,
                    1,
                    owed,
                    owed * 9 // 10,
                    cap,
                    cap + 1,
                    owed // 3,
                    0,
                    cap - 1,
                ]
                attempt(victim.user, collateral, debt, amounts[step % len(amounts)], step % 2 == 1)
                step += 1
        rounds_done = stats["liquidations"] + stats["reverts"]

        # 2. The other validation reverts, on whoever is still liquidatable / a healthy user.
        _, state, now = h.snapshot(list(dev.users.values()) + list(seeded.values()))
        victim = next(p for p in now.values() if _enabled(p) and _borrowed(p) and account_data(p, state).liquidatable)
        not_enabled = next(r for r in state.reserve_ids if not victim.legs.get(r, Leg()).collateral_enabled)
        not_borrowed = next(r for r in state.reserve_ids if not victim.legs.get(r, Leg()).scaled_variable_debt)
        healthy = now[dev.users["emode-mixed"].lower()]
        outside = now.get(seeded["liq-lt0-outside"].lower())
        wstETH = market.by_symbol["wstETH"].reserve_id
        Chain(dev.rpc).set_balances([victim.user], GAS_MONEY)
        scripted = [
            (healthy.user, _enabled(healthy)[0], _borrowed(healthy)[0], UINT256_MAX, False, LIQUIDATOR),
            (victim.user, not_enabled, _borrowed(victim)[0], UINT256_MAX, False, LIQUIDATOR),
            (victim.user, _enabled(victim)[0], not_borrowed, UINT256_MAX, True, LIQUIDATOR),
            (victim.user, _enabled(victim)[0], _borrowed(victim)[0], UINT256_MAX, True, victim.user),
        ]
        if outside and _borrowed(outside) and account_data(outside, state).liquidatable:
            scripted.append((outside.user, wstETH, _borrowed(outside)[0], UINT256_MAX, False, LIQUIDATOR))
        assert len(scripted) == 5, "liq-lt0-outside is not liquidatable"
        for user, collateral, debt, amount, receive, sender in scripted:
            predicted = attempt(user, collateral, debt, amount, receive, sender)
            assert not predicted.ok, (h.symbol[collateral], h.symbol[debt], predicted)
        # 3. A deficit in the liquidated reserve and in another debt (burned by _burnBadDebt).
        weth, usdc, dai = (market.by_symbol[s].reserve_id for s in ("WETH", "USDC", "DAI"))
        predicted = attempt(seeded["liq-deficit-burn"], weth, usdc, UINT256_MAX, True)
        assert predicted.ok and set(predicted.deficit) == {usdc, dai}, predicted

    mismatches = stats["mismatches"]
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:3]}"
    assert stats["liquidations"] >= 40 and rounds_done >= 100, stats
    assert set(stats["reasons"]) == {
        L.GRACE_PERIOD,
        L.HF_NOT_BELOW_THRESHOLD,
        L.COLLATERAL_CANNOT_BE_LIQUIDATED,
        L.NOT_BORROWED,
        L.SELF_LIQUIDATION,
        L.MUST_NOT_LEAVE_DUST,
        L.INVALID_BURN_AMOUNT,
    }, stats["reasons"]
    assert all(seen.values()), seen
    assert grace_until > 0
    # The control: the 3.5 model (LT-0 collateral neither counted nor liquidatable) gets some of these wrong.
    assert stats["mispredicted_35"] >= 1, stats


def _count(seen, predicted, state, position, collateral: int, debt: int, receive: bool) -> None:
    half_hf = L.CLOSE_FACTOR_HF_THRESHOLD
    full = predicted.max_liquidatable_debt == predicted.user_reserve_debt
    seen["half_close"] += not full
    seen["full_close_small_reserve"] += full and predicted.health_factor > half_hf
    seen["full_close_low_hf"] += full and predicted.health_factor <= half_hf
    coll_left = predicted.user_collateral_balance - predicted.collateral_seized - predicted.protocol_fee
    seen["capped_collateral"] += coll_left == 0  # the bonus asked for more than the user had
    seen["deficit"] += bool(predicted.deficit)
    seen["deficit_other_debt"] += any(r != debt for r in predicted.deficit)
    seen["emode_bonus"] += bool(position.emode_category) and state.in_emode(position.emode_category, collateral)
    seen["lt0_collateral"] += state.by_id[collateral].liquidation_threshold == 0
    seen["receive_true" if receive else "receive_false"] += 1
    seen["collateral_flag_cleared"] += predicted.collateral_flag_cleared
    # The dust rule's exceptions: a leftover under $1,000 allowed because the debt or the collateral is cleared.
    coll, dbt = state.by_id[collateral], state.by_id[debt]
    debt_left = predicted.user_reserve_debt - predicted.debt_repaid
    small = (0 < coll_left * coll.price // coll.unit < DUST) or (0 < debt_left * dbt.price // dbt.unit < DUST)
    seen["dust_exception"] += small and (coll_left == 0 or debt_left == 0)
