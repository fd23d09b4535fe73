"""FastPathExecutor: right after the watcher's evaluation of a block, liquidate the users below HF 1.

Per block, for each user the Pool would let us liquidate (exact HF < 1):
1. plan: the most profitable (collateral, debt, debtToCover) net of the flash premium, the swap at the pair's real
   reserves and gas (risk/profit.py, every point exact), for a transaction landing in the next block;
2. claim the user in Redis (idempotency.py): one attempt in flight per (market, user) over every
   executor process; no answer from Redis, no send;
3. verify against the latest state ("pending verification"): `eth_createAccessList` of the Liquidator call (the
   gas it uses, or its revert: one execution, where eth_estimateGas searches); a revert
   (someone was faster, a price moved) gives the claim back and sends nothing;
4. fees from the gas ladder (a share of the profit as priority fee, capped so profit net of gas stays >= the minimum);
5. dry-run (the default): record what would be sent. Live: under the sender's nonce lock, sign (EIP-1559, the
   chain's id) and send; record.
Then every block, `follow()` reads the receipts of what is in flight: included (realized profit from the contract's
Liquidated event, net of gas), reverted or lost (another liquidator's LiquidationCall of the same user), replaced
with a fee bump after N blocks, cancelled when the user is no longer liquidatable, dropped.

Round trips per block with liquidatable users, however many: one batch reads the block (header, pools, inventory),
one verifies every transaction, then the nonce read and one batch sends them all; a block without any costs nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..cache.keys import MarketKeys
from ..chain.abi import event_topic, events
from ..chain.liquidator_abi import liquidated_events
from ..chain.rpc import RpcClient, RpcError
from ..risk.exact import account_data
from ..risk.market import MarketState, UserPosition
from ..risk.profit import CostInputs, LiquidationPlan, plan_liquidation
from ..risk.wadray import WAD
from .gas_ladder import Costs as LadderCosts
from .gas_ladder import Fees, LadderConfig, Pending, initial_fees, next_step, usd_e8, usd_to_wei
from .idempotency import TAKEN, AttemptGuard, Claim, NonceLock, Opportunity
from .liquidator_call import plan_calldata
from .records import ExecutionAttempt, new_attempt_key
from .signer import Signer

log = logging.getLogger(__name__)

GET_RESERVES = "0x0902f1ac"  # getReserves()
BALANCE_OF = "0x70a08231"  # balanceOf(address)
# gas limit = gas used x 1.3: a flash loan's nested calls need ~10 % over what they use (the 63/64 rule; measured
# eth_estimateGas / used = 1.10 on the V3.6 devnet), and the state of the next block may cost a little more
GAS_LIMIT_BPS = 13_000
DEFAULT_GAS_UNITS = 700_000  # planning figure before the estimate (measured: 475k on V3.6, 682k on V3.0)
CANCEL_GAS = 21_000
ANY_ASSET = "0x" + "00" * 20  # the claim's pair: any (claims are per user)
LIQUIDATION_CALL = events("Pool")[event_topic("Pool", "LiquidationCall")]


@dataclass(frozen=True)
class Venue:
    """Where the executor acts: its Liquidator contract, the Uniswap V2 pairs it sells on, the Pool's shape."""

    liquidator: str  # the Liquidator contract (its operator is the signer's address)
    operator: str  # the sending address (the signer's)
    pairs: Mapping[tuple[int, int], str]  # (reserve id of the pair's token0, of token1) -> pair address
    compact: bool  # an L2Pool: the compact liquidationCall (Base)
    flash_premium_bps: int  # Pool.FLASHLOAN_PREMIUM_TOTAL
    eth_reserve_id: int  # the reserve whose oracle price is the native token's (WETH)
    inventory: bool = False  # the contract holds debt assets: plan inventory mode too (collateral kept, no swap)

    def pair_for(self, a: int, b: int) -> str | None:
        return self.pairs.get((a, b)) or self.pairs.get((b, a))


@dataclass(frozen=True)
class ExecutorConfig:
    live: bool = False  # EXECUTION_ENABLED: False = dry-run, nothing is signed or sent
    min_profit_usd: float = 1.0
    ladder: LadderConfig = field(default_factory=LadderConfig)
    block_time: int = 2  # seconds: the block the transaction lands in is this much later


@dataclass
class InFlight:
    attempt: ExecutionAttempt
    plan: LiquidationPlan
    tx: dict  # unsigned, without fees and nonce (a replacement re-signs it)
    nonce: int
    pending: Pending
    costs: LadderCosts
    hashes: list[str]
    claim: Claim | None = None
    cancelled: bool = False


def next_base_fee(header: dict) -> int:
    """EIP-1559: the next block's base fee from this block's base fee, gas used and gas limit (elasticity 2,
    change denominator 8; OP-stack chains set their own, Base's are 2 / 250 since Canyon: close enough for an
    expectation, the chain's header is what is paid)."""
    base = int(header.get("baseFeePerGas", "0x0"), 16)
    used, limit = int(header.get("gasUsed", "0x0"), 16), int(header.get("gasLimit", "0x0"), 16)
    target = limit // 2
    if not target or used == target:
        return base
    if used > target:
        return base + max(1, base * (used - target) // target // 8)
    return base - base * (target - used) // target // 8


def _after_our_swap(pools: dict, balances: dict, plan: LiquidationPlan) -> None:
    """The pair's reserves once our transaction for `plan` has run (our transactions run in nonce order). A pair's
    swap prices from its stored reserves but then stores its token balances, which also hold any tokens sent to it
    without a swap (a failed arbitrage's transfer, a donation): the next swap meets those."""
    if plan.costs.swap_in == 0:
        return
    c, d = plan.collateral_id, plan.debt_id
    key = (c, d) if (c, d) in pools else (d, c)
    held = balances.get(key, pools[key])
    if key == (c, d):
        after = (held[0] + plan.costs.swap_in, held[1] - plan.costs.swap_out)
    else:
        after = (held[0] - plan.costs.swap_out, held[1] + plan.costs.swap_in)
    pools[key] = balances[key] = after


@dataclass
class _Staged:
    """A planned, claimed transaction waiting for its verification and fees."""

    plan: LiquidationPlan
    claim: Claim
    tx: dict
    base: dict
    fees: Fees | None = None


def _unsigned(tx: dict, fees: Fees, nonce: int) -> dict:
    return {
        "to": tx["to"],
        "data": tx.get("data", "0x"),
        "value": tx.get("value", 0),
        "gas": tx["gas"],
        "nonce": nonce,
        "maxFeePerGas": fees.max_fee_per_gas,
        "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
    }


class FastPathExecutor:
    def __init__(
        self,
        rpc: RpcClient,
        market: MarketKeys,
        venue: Venue,
        guard: AttemptGuard,
        config: ExecutorConfig,
        *,
        signer: Signer | None = None,
        nonce_lock: NonceLock | None = None,
        recorder=None,
    ) -> None:
        if config.live and (signer is None or nonce_lock is None):
            raise ValueError("a live executor needs a signer and a nonce lock")
        if signer is not None and signer.address.lower() != venue.operator.lower():
            raise ValueError(f"the signer is {signer.address}, the Liquidator's operator is {venue.operator}")
        self.rpc, self.market, self.venue, self.guard, self.config = rpc, market, venue, guard, config
        self.signer, self.nonce_lock, self.recorder = signer, nonce_lock, recorder
        self.in_flight: dict[str, InFlight] = {}  # attempt key -> what is pending on chain
        self.attempts: list[ExecutionAttempt] = []  # every final state, in order (the arena's tally)
        self.mismatches: list[tuple] = []  # included liquidations whose amounts differ from their plan
        self.unplanned: dict[str, int] = {}  # user -> last block it was below 1 with no profitable plan
        self._next_base_fee = 0
        self.inventory: dict[int, int] = {}  # reserve id -> the contract's balance (read each block it acts)
        self.mode = "live" if config.live else "dry_run"

    # --- one block ---------------------------------------------------------------------------------------------
    def on_block(self, state: MarketState, positions: Sequence[UserPosition], seen_at: float) -> list[ExecutionAttempt]:
        """Act on `positions` (the users the watcher found below HF 1 at `state.block`); returns this block's
        attempts (sent, dry-run or skipped). Follows what is in flight first (a settled attempt frees its user).

        Whatever the number of users: one batch reads the block (header, pools, inventory), one batch verifies
        every planned transaction, one batch sends them all (under the nonce lock, nonces in plan order)."""
        self.follow(state, positions)
        busy = {f.attempt.user for f in self.in_flight.values()}
        ready = [p for p in positions if p.user.lower() not in busy and account_data(p, state).health_factor < WAD]
        if not ready:
            return []
        header, pools, balances = self._read_block(state.block, ready, state)
        base_fee = int(header.get("baseFeePerGas", "0x0"), 16)
        self._next_base_fee = next_base_fee(header)
        eth_price = state.by_id[self.venue.eth_reserve_id].price
        costs = CostInputs(self.venue.flash_premium_bps, DEFAULT_GAS_UNITS, base_fee, 0, eth_price)
        min_base = int(usd_e8(self.config.min_profit_usd)) * state.base_currency_unit // 10**8
        # the largest debts first: planned (and sent) in this order, so the most valuable land first and each plan
        # meets the pools and the inventory our earlier transactions in the block leave
        ready.sort(key=lambda p: -account_data(p, state).total_debt_base)
        out: list[ExecutionAttempt] = []
        staged: list[_Staged] = []
        for position in ready:
            plan = plan_liquidation(
                position,
                state,
                pools,
                costs,
                liquidator=self.venue.liquidator,
                timestamp=state.timestamp + self.config.block_time,
                min_profit_base=max(1, min_base),
                inventory=self.inventory or None,
            )
            if plan is None:
                self.unplanned[position.user.lower()] = state.block
                continue
            stage = self._stage(plan, state, seen_at)
            if isinstance(stage, ExecutionAttempt):
                out.append(stage)
                continue
            if stage is None:
                continue
            staged.append(stage)
            _after_our_swap(pools, balances, plan)  # our next transaction in this block meets the pool after it
            if plan.mode == "inventory":  # and the inventory after it
                self.inventory[plan.debt_id] -= plan.outcome.debt_repaid
        if not staged:
            return out
        sendable = self._verify_all(staged, state, base_fee, eth_price, out)
        if sendable:
            out += self._send_all(sendable, state)
        return out

    def _stage(self, plan: LiquidationPlan, state: MarketState, seen_at: float):
        """The claim and the transaction of a plan; a skipped attempt when Redis refused; None when another
        attempt holds the user."""
        base = {
            "market": self.market,
            "mode": self.mode,
            "block_seen": state.block,
            "seen_at": seen_at,
            "user": plan.user,
            "collateral_asset": plan.collateral_asset,
            "debt_asset": plan.debt_asset,
            "debt_to_cover": plan.debt_to_cover,
            "expected_profit_usd": plan.profit_usd,
            "expected_profit_debt": plan.profit,
        }
        # Claimed per user, not per pair: two executors reading the pools a moment apart may choose different
        # pairs for one user, and both would send. One attempt in flight per user; a settled one frees it.
        claim = self.guard.claim(Opportunity(self.market, plan.user, ANY_ASSET, ANY_ASSET), state.block)
        if not claim:  # another attempt holds it (this process or another), or Redis did not answer: no send
            if claim.reason == TAKEN:
                return None  # not an attempt: the opportunity's attempt exists
            return self._final(
                ExecutionAttempt(
                    attempt_key=new_attempt_key(state.block), outcome="skipped", reason=f"claim {claim.reason}", **base
                )
            )
        pair = self.venue.pair_for(plan.collateral_id, plan.debt_id)
        # minProfit on chain: the gas this plan was charged, so a smaller liquidation than planned (a competitor
        # took part first) reverts instead of running at a loss
        data = plan_calldata(plan, pair, max(1, plan.costs.gas), compact=self.venue.compact)
        tx = {"from": self.venue.operator, "to": self.venue.liquidator, "data": "0x" + data.hex()}
        return _Staged(plan, claim, tx, base)

    def _verify_all(
        self, staged: list[_Staged], state: MarketState, base_fee: int, eth_price: int, out: list
    ) -> list[tuple[_Staged, ExecutionAttempt, LadderCosts]]:
        """Pending verification of every staged transaction in one batch of eth_createAccessList against the latest
        state: one execution each, answering the gas used or the revert (someone was faster, a price moved).
        eth_estimateGas would answer the limit directly but searches for it (~15 executions of a flash loan on
        anvil); the limit is the gas used x GAS_LIMIT_BPS instead. Then the gas ladder's fees. Dry-run attempts
        and skipped ones go to `out`; what may be sent is returned."""
        answers = self.rpc.batch([("eth_createAccessList", [s.tx, "latest"]) for s in staged], raise_on_error=False)
        sendable = []
        for stage, listed in zip(staged, answers, strict=True):
            failed = listed if isinstance(listed, RpcError) else (listed or {}).get("error") or not listed
            if failed or "gasUsed" not in listed:
                self.guard.release_unsent(stage.claim)
                reason = f"verification: {failed or listed}"[:300]
                out.append(
                    self._final(
                        ExecutionAttempt(attempt_key=stage.claim.token, outcome="skipped", reason=reason, **stage.base)
                    )
                )
                continue
            used = int(listed["gasUsed"], 16)
            plan = stage.plan
            debt = state.by_id[plan.debt_id]
            gross = plan.profit + plan.costs.gas  # debt units, before gas: what the contract itself sees
            gas_limit = used * GAS_LIMIT_BPS // 10_000
            profit_wei = gross * debt.price * 10**18 // (debt.unit * eth_price)
            costs = LadderCosts(profit_wei, usd_to_wei(usd_e8(self.config.min_profit_usd), eth_price), gas_limit, 0)
            decision = initial_fees(self.config.ladder, costs, base_fee)
            if decision.action != "send":
                self.guard.release_unsent(stage.claim)
                out.append(
                    self._final(
                        ExecutionAttempt(
                            attempt_key=stage.claim.token, outcome="skipped", reason=decision.reason, **stage.base
                        )
                    )
                )
                continue
            fees = decision.fees
            # expected: the gas it uses at the fees it will pay in the next block, whose base fee follows from this
            # one's (EIP-1559)
            paid_per_gas = min(fees.max_fee_per_gas, self._next_base_fee + fees.max_priority_fee_per_gas)
            gas_cost_usd = used * paid_per_gas * eth_price / 10**18 / state.base_currency_unit
            gross_usd = gross * debt.price / debt.unit / state.base_currency_unit
            attempt = ExecutionAttempt(
                attempt_key=stage.claim.token,
                gas_limit=gas_limit,
                priority_fee_wei=fees.max_priority_fee_per_gas,
                max_fee_wei=fees.max_fee_per_gas,
                **{**stage.base, "expected_profit_usd": gross_usd - gas_cost_usd},
            )
            stage.tx["gas"] = gas_limit
            stage.fees = fees
            if not self.config.live:
                out.append(self._final(attempt.with_outcome("dry_run", sent_at=time.time(), block_sent=state.block)))
                continue
            sendable.append((stage, attempt, costs))
        return sendable

    def _send_all(self, sendable: list, state: MarketState) -> list[ExecutionAttempt]:
        """Sign every transaction with consecutive nonces and send them in one batch, under the nonce lock."""
        out = []
        with self.nonce_lock.held() as ok:
            if not ok:
                for stage, attempt, _costs in sendable:
                    self.guard.release_unsent(stage.claim)
                    out.append(self._final(attempt.with_outcome("skipped", reason="nonce lock held elsewhere")))
                return out
            first = int(self.rpc.call("eth_getTransactionCount", self.venue.operator, "pending"), 16)
            signed = [
                self.signer.sign(_unsigned(stage.tx, stage.fees, first + k)) for k, (stage, *_r) in enumerate(sendable)
            ]
            answers = self.rpc.batch(
                [("eth_sendRawTransaction", ["0x" + s.raw.hex()]) for s in signed], raise_on_error=False
            )
            sent_at = time.time()
            gaps = []
            for (stage, attempt, costs), tx, answer in zip(sendable, signed, answers, strict=True):
                if isinstance(answer, RpcError):
                    log.warning("send refused (nonce %d): %s", tx.nonce, answer)
                    self.guard.release_unsent(stage.claim)
                    out.append(self._final(attempt.with_outcome("skipped", reason=f"send refused: {answer}"[:300])))
                    gaps.append(tx.nonce)
                    continue
                attempt = attempt.with_outcome(
                    "sent", sent_at=sent_at, block_sent=state.block, tx_hash=tx.hash, nonce=tx.nonce
                )
                pending = Pending(stage.fees, state.block)
                self.in_flight[attempt.attempt_key] = InFlight(
                    attempt, stage.plan, stage.tx, tx.nonce, pending, costs, [tx.hash], stage.claim
                )
                self._record(attempt)
                out.append(attempt)
            last = first + len(signed) - 1
            for nonce in gaps:  # a refused nonce below sent ones would hold them back: a self-transfer fills it
                if nonce < last:
                    cancel = {"to": self.venue.operator, "gas": CANCEL_GAS, "data": "0x", "value": 0}
                    self._sign_and_send(cancel, sendable[0][0].fees, nonce)
        return out

    def _read_block(self, block: int, users: Sequence[UserPosition], state: MarketState):
        """One batch: the block's header (base fee), and for every pair these users' plans may sell on its
        reserves and its two token balances."""
        wanted: dict[str, tuple[int, int]] = {}
        for position in users:
            held = [r for r, leg in position.legs.items() if leg.collateral_enabled and leg.scaled_atoken]
            owed = [r for r, leg in position.legs.items() if leg.scaled_variable_debt]
            for c in held:
                for d in owed:
                    for key in ((c, d), (d, c)):
                        if key in self.venue.pairs:
                            wanted[self.venue.pairs[key]] = key
        pairs = list(wanted)
        tag = hex(block)
        requests = [("eth_getBlockByNumber", [tag, False])]
        for pair in pairs:
            holder = "0" * 24 + pair.lower().removeprefix("0x")
            requests.append(("eth_call", [{"to": pair, "data": GET_RESERVES}, tag]))
            requests += [
                ("eth_call", [{"to": state.by_id[i].asset, "data": BALANCE_OF + holder}, tag]) for i in wanted[pair]
            ]
        held_ids = [r.reserve_id for r in state.reserves] if self.venue.inventory else []
        holder = "0" * 24 + self.venue.liquidator.lower().removeprefix("0x")
        requests += [("eth_call", [{"to": state.by_id[i].asset, "data": BALANCE_OF + holder}, tag]) for i in held_ids]
        answers = self.rpc.batch(requests, raise_on_error=False)
        tail = answers[len(answers) - len(held_ids) :] if held_ids else []
        self.inventory = {i: int(a, 16) for i, a in zip(held_ids, tail, strict=True) if isinstance(a, str)}
        pools, balances = {}, {}
        for k, pair in enumerate(pairs):
            reserves, balance0, balance1 = answers[1 + 3 * k : 4 + 3 * k]
            if isinstance(reserves, str) and len(reserves) >= 130:
                pools[wanted[pair]] = (int(reserves[2:66], 16), int(reserves[66:130], 16))
                if isinstance(balance0, str) and isinstance(balance1, str):
                    balances[wanted[pair]] = (int(balance0, 16), int(balance1, 16))
        header = answers[0] if isinstance(answers[0], dict) else {}
        return header, pools, balances

    def _send(self, tx: dict, fees: Fees, nonce: int) -> tuple[int, str, float] | None:
        """One transaction (a replacement, a cancel) under the sender's nonce lock: (nonce, hash, time accepted)
        or None when nothing was sent."""
        with self.nonce_lock.held() as ok:
            return self._sign_and_send(tx, fees, nonce) if ok else None

    def _sign_and_send(self, tx: dict, fees: Fees, nonce: int) -> tuple[int, str, float] | None:
        signed = self.signer.sign(_unsigned(tx, fees, nonce))
        try:
            self.rpc.call("eth_sendRawTransaction", "0x" + signed.raw.hex())
        except RpcError as error:
            log.warning("send refused (nonce %d): %s", nonce, error)
            return None
        return nonce, signed.hash, time.time()

    # --- what is in flight -------------------------------------------------------------------------------------
    def follow(self, state: MarketState, positions: Sequence[UserPosition]) -> None:
        """Receipts of every transaction in flight: final outcomes recorded; the rest waits, is replaced with
        bumped fees, or cancelled when its user is no longer liquidatable."""
        if not self.in_flight:
            return
        flights = list(self.in_flight.values())
        hashes = [h for f in flights for h in f.hashes]
        # the sender's mined count first: a block landing between the two reads then shows as receipts, never as
        # a nonce used by someone else
        answers = self.rpc.batch(
            [("eth_getTransactionCount", [self.venue.operator, "latest"])]
            + [("eth_getTransactionReceipt", [h]) for h in hashes],
            raise_on_error=False,
        )
        used_nonces = int(answers[0], 16) if isinstance(answers[0], str) else 0
        receipts = dict(zip(hashes, answers[1:], strict=True))
        liquidatable = {p.user.lower() for p in positions if account_data(p, state).health_factor < WAD}
        header = None
        for flight in flights:
            receipt = next((receipts[h] for h in flight.hashes if isinstance(receipts.get(h), dict)), None)
            if receipt is not None:
                self._settle(flight, receipt, state)
                continue
            if used_nonces > flight.nonce:  # mined, but by none of our hashes: another sender of this key
                del self.in_flight[flight.attempt.attempt_key]
                if flight.claim is not None:
                    self.guard.release_unsent(flight.claim)
                reason = "the nonce was used by a transaction this executor did not send"
                self._final(flight.attempt.with_outcome("replaced", reason=reason))
                continue
            if flight.cancelled:  # a cancel is in flight: it is included or the nonce goes to the original
                continue
            if header is None:
                header = self.rpc.call("eth_getBlockByNumber", hex(state.block), False) or {}
            decision = next_step(
                self.config.ladder,
                flight.pending,
                flight.costs,
                block=state.block,
                base_fee_wei=int(header.get("baseFeePerGas", "0x0"), 16),
                opportunity_open=flight.attempt.user in liquidatable,
            )
            if decision.action in ("replace", "cancel") and decision.fees is not None:
                cancel = {"to": self.venue.operator, "gas": CANCEL_GAS, "data": "0x", "value": 0}
                tx = flight.tx if decision.action == "replace" else cancel
                sent = self._send(tx, decision.fees, flight.nonce)
                if sent is not None:
                    flight.hashes.append(sent[1])
                    flight.pending = Pending(decision.fees, state.block, flight.pending.bumps + 1)
                    flight.cancelled = flight.cancelled or decision.action == "cancel"
                    flight.attempt = flight.attempt.with_outcome(
                        "sent", replacements=flight.attempt.replacements + 1, tx_hash=sent[1]
                    )
                    self._record(flight.attempt)

    def _settle(self, flight: InFlight, receipt: dict, state: MarketState) -> None:
        del self.in_flight[flight.attempt.attempt_key]
        if flight.claim is not None:  # settled: what is left of the position is a new opportunity
            self.guard.release_unsent(flight.claim)
        block = int(receipt["blockNumber"], 16)
        gas_used = int(receipt["gasUsed"], 16)
        paid = gas_used * int(receipt.get("effectiveGasPrice", "0x0"), 16) + int(receipt.get("l1Fee", "0x0"), 16)
        eth_price = state.by_id[self.venue.eth_reserve_id].price
        unit = state.base_currency_unit
        common = {"block_included": block, "gas_used": gas_used, "tx_hash": receipt["transactionHash"]}
        events = liquidated_events(receipt.get("logs", []), self.venue.liquidator)
        if receipt.get("status") == "0x1" and events:
            debt, plan, event = state.by_id[flight.plan.debt_id], flight.plan, events[0]
            repaid, seized = plan.outcome.debt_repaid, plan.outcome.collateral_seized
            if plan.collateral_id == plan.debt_id:  # one token both ways: the contract sees the net change
                wanted = (max(0, repaid - seized), max(0, seized - repaid), 0)
            else:
                wanted = (repaid, seized, plan.costs.swap_out if plan.mode == "flash" else 0)
            if (event.debt_repaid, event.collateral_received, event.swap_out) != wanted:
                position = int(receipt.get("transactionIndex", "0x0"), 16)
                self.mismatches.append((flight.attempt.user, block, event, wanted, position))
            realized = events[0].profit * debt.price / debt.unit / unit - paid * eth_price / 10**18 / unit
            self._final(flight.attempt.with_outcome("included", realized_profit_usd=realized, **common))
            return
        if receipt.get("status") == "0x1":  # our cancel (a self-transfer) took the nonce
            self._final(
                flight.attempt.with_outcome("cancelled", reason="the user was no longer liquidatable", **common)
            )
            return
        rival = self._rival(flight.attempt.user, flight.attempt.block_seen + 1, block)
        if rival is not None:
            who, tx_hash, at = rival
            self._final(
                flight.attempt.with_outcome(
                    "lost", competitor=who, competitor_tx=tx_hash, lost_by_blocks=block - at, **common
                )
            )
            return
        self._final(flight.attempt.with_outcome("reverted", reason="reverted on chain", **common))

    def _rival(self, user: str, from_block: int, to_block: int) -> tuple[str, str, int] | None:
        """Another liquidator's LiquidationCall of `user` in [from_block, to_block]: (liquidator, tx, block)."""
        topic_user = "0x" + "00" * 12 + user.lower().removeprefix("0x")
        try:
            logs = self.rpc.call(
                "eth_getLogs",
                {
                    "fromBlock": hex(from_block),
                    "toBlock": hex(to_block),
                    "topics": [LIQUIDATION_CALL.topic, None, None, topic_user],
                },
            )
        except RpcError:
            return None
        for entry in logs:
            liquidator = LIQUIDATION_CALL.decode(entry)["liquidator"]
            if liquidator.lower() != self.venue.liquidator.lower():
                return liquidator, entry["transactionHash"], int(entry["blockNumber"], 16)
        return None

    # --- records -----------------------------------------------------------------------------------------------
    def _record(self, attempt: ExecutionAttempt) -> None:
        if self.recorder is not None:
            self.recorder.record(attempt)

    def _final(self, attempt: ExecutionAttempt) -> ExecutionAttempt:
        self.attempts.append(attempt)
        self._record(attempt)
        return attempt
