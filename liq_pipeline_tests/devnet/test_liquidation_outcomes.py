"""risk.liquidation against the real V3.0 Pool: every predicted liquidation, bit for bit, and every predicted revert.

After a price shock, liquidations with varied debtToCover (a few wei, small, half, the whole reserve debt, max
uint), varied collateral/debt pairs and receiveAToken true and false are predicted from the state at the block
before and sent one per block. The LiquidationCall amounts, the user's scaled balances and flags, and the
liquidator's aTokens after must equal the prediction exactly; a predicted revert must revert with that reason.
"""

from __future__ import annotations

import pytest

from liq_pipeline.chain.discovery import discover_market, read_market_state
from liq_pipeline.chain.positions import read_positions
from liq_pipeline.chain.rpc import RpcClient, RpcError
from liq_pipeline.devnet import actions
from liq_pipeline.devnet.abi import call_data, decode_result
from liq_pipeline.devnet.accounts import LIQUIDATOR
from liq_pipeline.devnet.anvil import BLOCK_TIME
from liq_pipeline.devnet.liquidation_check import fund_liquidator
from liq_pipeline.devnet.txs import Chain, Tx
from liq_pipeline.risk.exact import account_data
from liq_pipeline.risk.liquidation import liquidation_outcome
from liq_pipeline.risk.market import Leg, user_positions
from liq_pipeline.risk.versions import rules_for
from liq_pipeline.risk.wadray import UINT256_MAX, WAD

pytestmark = pytest.mark.integration
RULES = rules_for("3.0")
STABLES = ("USDC", "DAI", "USDT")
WANTED_SUCCESSES = 60
ERROR_STRING = "0x08c379a0"  # Error(string)


def _revert_reason(error: RpcError) -> str:
    data = error.data if isinstance(error.data, str) else (error.data or {}).get("data", "")
    assert data.startswith(ERROR_STRING), f"not an Error(string) revert: {error} {data!r}"
    (reason,) = decode_result(["string"], "0x" + data[len(ERROR_STRING) :])
    return reason


class Harness:
    def __init__(self, chain, reader: RpcClient):
        self.chain, self.reader = chain, reader
        self.sender = Chain(chain.rpc)
        self.market = discover_market(reader, chain.market.addresses_provider, self.head(), RULES)
        self.assets = {r.reserve_id: r.asset for r in chain.market.reserves}

    def head(self) -> int:
        return int(self.reader.call("eth_blockNumber"), 16)

    def snapshot(self, users):
        head = self.head()
        state = read_market_state(self.reader, self.market, head, RULES, STABLES)
        frame = read_positions(self.reader, self.market, users, head, RULES)
        by_user = {p.user.lower(): p for p in user_positions(frame, state.reserve_ids)}
        return head, state, by_user

    def scaled(self, user: str, reserve_id: int, block: int) -> tuple[int, int]:
        """(scaled aToken, scaled variable debt) of `user` at `block`, from the tokens."""
        reserve = next(r for r in self.chain.market.reserves if r.reserve_id == reserve_id)
        data = call_data("scaledBalanceOf(address)", user)
        requests = [
            ("eth_call", [{"to": token, "data": data}, hex(block)])
            for token in (reserve.a_token, reserve.variable_debt_token)
        ]
        return tuple(int(answer, 16) for answer in self.reader.batch(requests))

    def call_data(self, user: str, collateral: int, debt: int, amount: int, receive: bool) -> str:
        return call_data(
            "liquidationCall(address,address,address,uint256,bool)",
            self.assets[collateral],
            self.assets[debt],
            user,
            amount,
            receive,
        )

    def revert_reason(self, data: str) -> str:
        """The reason the Pool gives for `data` at the latest block (after the reverted one: same state and time)."""
        with pytest.raises(RpcError) as raised:
            self.reader.call("eth_call", {"from": LIQUIDATOR, "to": self.chain.market.pool, "data": data}, "latest")
        return _revert_reason(raised.value)

    def send(self, data: str, timestamp: int):
        tx = Tx(LIQUIDATOR, self.chain.market.pool, data, label="liquidationCall")
        with self.sender.manual_mining():
            return self.sender.execute([tx], timestamp=timestamp, allow_revert=True)


def _amounts(owed: int) -> list[int]:
    """debtToCover values to try against a reserve debt of `owed`."""
    return [UINT256_MAX, owed // 2, owed // 7 + 1, owed, max(owed // 1000, 1), 3 * owed // 4]


def test_predicted_liquidations_equal_the_pool(chain):
    market = chain.market
    prices = actions.oracle_prices(chain.rpc, market)
    shocked = {"WETH": prices["WETH"] * 7 // 10, "WBTC": prices["WBTC"] * 7 // 10, "AERO": prices["AERO"] // 2}
    actions.set_prices(chain.rpc, market, shocked)
    fund_liquidator(chain.rpc, chain.market)

    with RpcClient(chain.node.url) as reader:
        h = Harness(chain, reader)
        _, state, positions = h.snapshot(chain.users)
        victims = sorted(
            (p for p in positions.values() if account_data(p, state).health_factor < WAD),
            key=lambda p: account_data(p, state).health_factor,
        )
        assert len(victims) >= 10
        # Alternate the nearest to 1 (50 % close factor) and the deepest (100 %).
        victims = [v for pair in zip(victims[::-1], victims, strict=True) for v in pair][: len(victims)]
        healthy = next(
            p
            for p in positions.values()
            if _borrowed(p) and _enabled(p) and 2 * WAD < account_data(p, state).health_factor < UINT256_MAX
        )

        successes = reverts = 0
        received_as = {True: 0, False: 0}
        seen_full_close = seen_half_close = seen_capped = seen_flag_cleared = 0
        step = 0
        for victim in victims:
            for attempt in range(4):
                head, state, now = h.snapshot([victim.user, LIQUIDATOR])
                position = now.get(victim.user.lower())
                if position is None or account_data(position, state).health_factor >= WAD:
                    break
                collaterals, debts = _enabled(position), _borrowed(position)
                if not collaterals or not debts:
                    break
                collateral = collaterals[(step + attempt) % len(collaterals)]
                debt = debts[(step // 2 + attempt) % len(debts)]
                owed = position.legs[debt].scaled_variable_debt * state.debt_index[debt] // 10**27
                amount = _amounts(owed)[step % 6]
                receive = step % 2 == 1
                step += 1
                timestamp = int(reader.call("eth_getBlockByNumber", hex(head), False)["timestamp"], 16) + BLOCK_TIME
                predicted = liquidation_outcome(
                    position, state, collateral, debt, amount, receive, LIQUIDATOR, timestamp
                )
                data = h.call_data(victim.user, collateral, debt, amount, receive)
                done = h.send(data, timestamp)
                if not predicted.ok:
                    assert done.ok == [False], f"predicted revert {predicted.revert} but the Pool liquidated"
                    assert h.revert_reason(data) == predicted.revert
                    reverts += 1
                    continue
                assert done.ok == [True], f"predicted {predicted} but the liquidation reverted"
                (event,) = actions.liquidation_events(done.logs, market.pool)
                assert (event.debt_to_cover, event.liquidated_collateral_amount, event.receive_a_token) == (
                    predicted.debt_repaid,
                    predicted.collateral_seized,
                    receive,
                )
                # Balances read straight from the tokens: the position reader skips legs whose flags are off.
                config = actions.user_configurations(chain.rpc, market.pool, [victim.user], done.block)[0]
                expected = predicted.position_after
                for reserve_id in {collateral, debt}:
                    want = expected.legs.get(reserve_id, Leg())
                    got = h.scaled(victim.user, reserve_id, done.block)
                    assert got == (want.scaled_atoken, want.scaled_variable_debt), f"reserve {reserve_id} after"
                    assert bool(config >> (2 * reserve_id + 1) & 1) == want.collateral_enabled
                assert bool(config >> (2 * debt) & 1) == (not predicted.debt_flag_cleared)
                received = h.scaled(LIQUIDATOR, collateral, done.block)[0] - h.scaled(LIQUIDATOR, collateral, head)[0]
                assert received == (predicted.collateral_scaled if receive else 0)
                successes += 1
                received_as[receive] += 1
                seen_full_close += predicted.max_liquidatable_debt == predicted.user_reserve_debt
                seen_half_close += predicted.max_liquidatable_debt < predicted.user_reserve_debt
                seen_capped += predicted.debt_repaid < min(amount, predicted.max_liquidatable_debt)
                seen_flag_cleared += predicted.collateral_flag_cleared
            if successes >= WANTED_SUCCESSES:
                break

        assert successes >= WANTED_SUCCESSES, f"only {successes} liquidations ({reverts} predicted reverts)"
        seen = (seen_half_close, seen_full_close, seen_capped, seen_flag_cleared, reverts)
        assert all(seen[:4]), f"half, full close, capped, flag cleared, reverts: {seen}"
        assert received_as[True] and received_as[False]

        # Predicted reverts, with the Pool's reason (eth_call at the latest block after the reverted one).
        head, state, now = h.snapshot([v.user for v in victims] + [healthy.user])
        victim = next(
            p
            for p in (now.get(v.user.lower()) for v in victims)
            if p and account_data(p, state).liquidatable and _enabled(p) and _borrowed(p)
        )
        enabled = _enabled(victim)
        borrowed = _borrowed(victim)
        not_enabled = next(r for r in state.reserve_ids if not victim.legs.get(r, Leg()).collateral_enabled)
        not_borrowed = next(r for r in state.reserve_ids if not victim.legs.get(r, Leg()).scaled_variable_debt)
        sound = now[healthy.user.lower()]
        cases = [
            (sound, _enabled(sound)[0], _borrowed(sound)[0], UINT256_MAX, False, "45"),
            (victim, not_enabled, borrowed[0], UINT256_MAX, False, "46"),
            (victim, enabled[0], not_borrowed, UINT256_MAX, True, "47"),
            (victim, enabled[0], borrowed[0], 0, False, "25"),  # burning 0 debt tokens
        ]
        # A few wei of DAI against WBTC collateral seize 0 WBTC: burning 0 aTokens reverts ('25').
        wbtc, dai = (next(r.reserve_id for r in market.reserves if r.symbol == s) for s in ("WBTC", "DAI"))
        for p in (now.get(v.user.lower()) for v in victims):
            if p and account_data(p, state).liquidatable and wbtc in _enabled(p) and dai in _borrowed(p):
                cases.append((p, wbtc, dai, 3, False, "25"))
                break
        for position, collateral, debt, amount, receive, code in cases:
            timestamp = int(reader.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16) + BLOCK_TIME
            predicted = liquidation_outcome(position, state, collateral, debt, amount, receive, LIQUIDATOR, timestamp)
            assert predicted.revert == code, (collateral, debt, amount, predicted)
            data = h.call_data(position.user, collateral, debt, amount, receive)
            assert h.send(data, timestamp).ok == [False]
            assert h.revert_reason(data) == code
        assert len(cases) == 5


def _enabled(position) -> list[int]:
    return sorted(r for r, leg in position.legs.items() if leg.collateral_enabled and leg.scaled_atoken)


def _borrowed(position) -> list[int]:
    return sorted(r for r, leg in position.legs.items() if leg.scaled_variable_debt)
