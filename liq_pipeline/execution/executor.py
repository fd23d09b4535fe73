"""FastPathExecutor: right after the watcher's evaluation of a block, liquidate the users below HF 1.

Per block, for each user the Pool would let us liquidate (exact HF < 1):
1. plan: the most profitable (collateral, debt, debtToCover) net of the flash premium, the swap at the pair's real
   reserves and gas (risk/profit.py, every point exact), for a transaction landing in the next block;
2. claim the user in Redis (idempotency.py): one attempt in flight per (market, user) over every
   executor process; no answer from Redis, no send;
3. verify ("pending verification"): the whole batch in one `eth_simulateV1` of the landing block behind what the
   block already sent (the gas each uses, its revert, or its Liquidated event), `eth_createAccessList` one by one
   on a node without it; a revert (someone was faster, a price moved) gives the claim back and sends nothing;
4. fees from the gas ladder (a share of the profit as priority fee, capped so profit net of gas stays >= the minimum);
5. dry-run (the default): record what would be sent. Live: under the sender's nonce lock (held from the
   verification, whose batch reads the nonce), sign (EIP-1559, the chain's id) and send; record.
Acting before a block is sealed (`ahead`: the pre-confirmation lane, pending_lane.py), the same on the market with
the pending price updates, simulated behind them, fees under theirs where they wait in a mempool.
Then every block, `follow()` reads the receipts of what is in flight: included (realized profit from the contract's
Liquidated event, net of gas), reverted or lost (another liquidator's LiquidationCall of the same user), replaced
with a fee bump after N blocks, cancelled when the user is no longer liquidatable, dropped.

Round trips per block with liquidatable users, however many: one batch reads the block (header, pools, inventory),
one verifies every transaction and reads the nonce, one batch sends them all; a block without any costs nothing.

Faults: Redis silent, no send (and no other claim waits for it that block; the guard logs the outage once). The node
gone before the send: the claims go back. Gone during it (the answer lost): each transaction keeps its claim and is
followed by its hash, known before sending, never sent again; follow() settles it when the node answers (included,
or dropped: in no pool and its nonce unused). A send the node refuses gives its claim back.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..cache.keys import MarketKeys
from ..chain.abi import event_topic, events
from ..chain.liquidator_abi import Liquidated, liquidated_events
from ..chain.pool_errors import POOL_ERRORS, selector
from ..chain.rpc import NodeUnavailable, RpcClient, RpcError, answered_s
from ..risk.exact import account_data
from ..risk.market import MarketState, UserPosition
from ..risk.profit import CostInputs, LiquidationPlan, PoolReserves, plan_at, plan_liquidation
from ..risk.wadray import WAD
from .channels import RawChannel, SubmissionChannel
from .gas_ladder import Costs as LadderCosts
from .gas_ladder import Fees, LadderConfig, Pending, initial_fees, next_step, usd_e8, usd_to_wei
from .idempotency import TAKEN, UNAVAILABLE, AttemptGuard, Claim, NonceLock, Opportunity
from .liquidator_call import plan_calldata
from .precompute import fingerprint
from .records import ExecutionAttempt
from .signer import Signer

log = logging.getLogger(__name__)

GET_RESERVES = "0x0902f1ac"  # getReserves()
BALANCE_OF = "0x70a08231"  # balanceOf(address)
# gas limit = gas used x 1.3: a flash loan's nested calls need ~10 % over what they use (the 63/64 rule; measured
# eth_estimateGas / used = 1.10 on the V3.6 devnet), and the state of the next block may cost a little more
GAS_LIMIT_BPS = 13_000
DEFAULT_GAS_UNITS = 700_000  # planning figure before the estimate (measured: 475k on V3.6, 682k on V3.0)
CANCEL_GAS = 21_000
PLANS_PER_SEND = 4  # plans per block at most, per transaction the block may send
# a block's FIRST_CHUNK largest transactions go out first, the rest of the block's together once planned: the
# first leave while the rest are planned. Each chunk is simulated behind the ones before it (they share the DEX's
# pairs and the inventory): chunks growing 4x from 4 simulated `liq arena`'s crash waves twice over (p99 764 ms
# instead of 529), one batch made the largest wait for the smallest (the 100k devnet: p50 131 ms, 88 in chunks)
FIRST_CHUNK = 4
# a first chunk only when more users than this are ready: for fewer, its verification and send on the way of the
# rest cost the act's last transaction more than they gained its first (`liq arena --trigger pending --vol-scale 1` at
# 10k, 2026-12-08: a 13-user act sent its first 4 at 16 ms and its last at 41 ms, of which ~11 ms were the first
# chunk's round trips, its claims again and its 4 transactions simulated again)
CHUNKED_ABOVE = 16
NODE_WAIT_KEPT = 65_536  # sends whose node wait is kept (`node_wait_ms`: a bench's figure)
SIMULATION_GAS = 5_000_000  # each simulated call's gas: above any liquidation's (measured: 475k-682k)
# reverts a simulated transaction of ours can meet, by selector: the Liquidator's own and the Pool's custom errors
REVERTS = {**POOL_ERRORS, selector("ProfitTooLow(int256,int256)"): "ProfitTooLow"}  # the Pool's, the Liquidator's
ANY_ASSET = "0x" + "00" * 20  # the claim's pair: any (claims are per user)
LIQUIDATION_CALL = events("Pool")[event_topic("Pool", "LiquidationCall")]


@dataclass(frozen=True)
class Ahead:
    """What lands in front of our transactions in the block they aim at, when we act before it is sealed (the
    pre-confirmation lane, execution/pending_lane.py): the pending price updates that made the users liquidatable.
    Our transactions are simulated behind `calls` on `block_tag`'s state, and where the sequencer orders by fee (a
    mempool: the update competes with us for its place) our fees stay under `fee_cap`'s, so they land behind the
    update and not in front of it, where the user is not liquidatable yet."""

    calls: tuple[dict, ...] = ()  # {"from", "to", "data"} each: the updates' calls, when the node's state lacks them
    # "pending" where the node's pending state already holds the updates and what the block ordered before us
    # (Flashblocks; the paced devnet, whose updates tip at the top): simulated on it, behind all of that
    block_tag: str = "latest"
    fee_cap: Fees | None = None  # our fees stay strictly under these (None: the update's order is already final)


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
    max_per_block: int = 256  # EXECUTION_MAX_PER_BLOCK: the rest of a block's users wait for the next one


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
    # the debt asset's and ETH's oracle prices the plan was valued at: the realized profit is valued at the same
    # ones, so that realized vs expected measures the execution, not the market's move since (10x volatility in
    # `liq arena` moved prices 1-2 % between plan and receipt: every such gap was that, not a different outcome)
    prices: tuple[int, int, int] = (0, 0, 0)  # debt asset, ETH, collateral
    simulated: Liquidated | None = None  # what its pending verification showed: the amounts it should land with
    followed_at: int = -1  # the last block whose follow asked the node about it


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


def _pool_key(pools: dict, plan: LiquidationPlan) -> tuple[int, int]:
    c, d = plan.collateral_id, plan.debt_id
    return (c, d) if (c, d) in pools else (d, c)


def _touches(plan: LiquidationPlan) -> set:
    """What a plan's transaction changes for the ones after it in the block: its pair, or its inventory asset."""
    if plan.mode == "inventory":
        return {("inventory", plan.debt_id)}
    if plan.costs.swap_in == 0:
        return set()
    return {("pair", frozenset((plan.collateral_id, plan.debt_id)))}


@dataclass
class _Model:
    """The pairs' reserves and token balances and the contract's inventory as our transactions of this block leave
    them (they run in nonce order, ahead of the block's other traffic when their priority fees are higher)."""

    pools: dict
    balances: dict
    inventory: dict

    def view(self, position: UserPosition) -> tuple:
        """What of this model a plan of `position` can use: the pairs between its reserves, the inventory of them."""
        ids = sorted(position.legs)
        pools = tuple((a, b, self.pools[a, b]) for a in ids for b in ids if (a, b) in self.pools)
        return pools, tuple(self.inventory.get(r, 0) for r in ids)

    def copy(self) -> _Model:
        return _Model(dict(self.pools), dict(self.balances), dict(self.inventory))

    def apply(self, plan: LiquidationPlan) -> None:
        """After `plan`'s transaction. A pair's swap prices from its stored reserves but then stores its token
        balances, which also hold any tokens sent to it without a swap (a failed arbitrage's transfer, a
        donation): the next swap meets those."""
        if plan.mode == "inventory":
            self.inventory[plan.debt_id] = self.inventory.get(plan.debt_id, 0) - plan.outcome.debt_repaid
            return
        if plan.costs.swap_in == 0:
            return
        key = _pool_key(self.pools, plan)
        if key not in self.pools:  # a pair none of this call's users sells on
            return
        held = self.balances.get(key, self.pools[key])
        if key == (plan.collateral_id, plan.debt_id):
            after = (held[0] + plan.costs.swap_in, held[1] - plan.costs.swap_out)
        else:
            after = (held[0] - plan.costs.swap_out, held[1] + plan.costs.swap_in)
        self.pools[key] = self.balances[key] = after


@dataclass
class _Staged:
    """A planned, claimed transaction waiting for its verification and fees."""

    plan: LiquidationPlan
    claim: Claim
    tx: dict
    base: dict
    position: UserPosition
    fees: Fees | None = None
    simulated: Liquidated | None = None  # the Liquidated event of its pending verification (eth_simulateV1)


def _spans(numbers: list[int]) -> str:
    """Sorted whole numbers as runs: [3, 4, 5, 9] -> "3-5, 9"."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)


def _under(fees: Fees, cap: Fees) -> Fees:
    """`fees` lowered to just under `cap`'s (to land behind a transaction where a block is ordered by fee: anvil
    orders by the max fee, Base's sequencer by the tip, so both stay under)."""
    top = min(fees.max_fee_per_gas, cap.max_fee_per_gas - 1)
    return Fees(top, max(0, min(fees.max_priority_fee_per_gas, cap.max_priority_fee_per_gas - 1, top)))


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
        channel: SubmissionChannel | None = None,
    ) -> None:
        if config.live and (signer is None or nonce_lock is None):
            raise ValueError("a live executor needs a signer and a nonce lock")
        if signer is not None and signer.address.lower() != venue.operator.lower():
            raise ValueError(f"the signer is {signer.address}, the Liquidator's operator is {venue.operator}")
        self.rpc, self.market, self.venue, self.guard, self.config = rpc, market, venue, guard, config
        # sends are never retried by the client: a retry after an answer lost on the way back is refused ("already
        # known", "nonce too low") though the first one is in the node's pool; an unanswered send is followed instead
        self._sender = RpcClient(rpc.url, timeout=rpc.timeout, retries=0) if isinstance(rpc, RpcClient) else rpc
        self.channel: SubmissionChannel = channel or RawChannel(self._sender)  # how a signed transaction goes out
        self._node_down = False  # logged once when the node stops answering, once when it answers again
        self._short_of_gas = False  # the same for a sender refused for want of ETH
        self.signer, self.nonce_lock, self.recorder = signer, nonce_lock, recorder
        self.in_flight: dict[str, InFlight] = {}  # attempt key -> what is pending on chain
        self.attempts: list[ExecutionAttempt] = []  # every final state, in order (the arena's tally)
        self.mismatches: list[tuple] = []  # included liquidations whose amounts differ from their plan
        self.unplanned: dict[str, int] = {}  # user -> last block it was below 1 with no profitable plan
        self.no_plan: dict[str, tuple] = {}  # user -> the state no profitable plan came from (see on_block)
        self._next_base_fee = 0
        self.inventory: dict[int, int] = {}  # reserve id -> the contract's balance (read each block it acts)
        self.mode = "live" if config.live else "dry_run"
        self.stages_ms: dict[str, float] = {}  # the last block's: follow, read, plan, verify, send
        self._simulate_supported: bool | None = None  # eth_simulateV1 on this node; None: not asked yet
        self.precomputed = None  # a PrecomputeCalldata whose plans `_plan` reuses while their state holds
        self._sent_block: int | None = None
        self._sent: list[_Staged] = []
        self.precomputed_hits = 0
        self.deferred = 0  # users left for the next block by EXECUTION_MAX_PER_BLOCK
        # attempt key -> ms of its block seen -> sent during which our clients waited for the node (follow's
        # receipts, our read, the verification, the send; and the block's read where the watcher shares our
        # client, as in the benches): the node's share of the latency, the rest being this process's own work
        self.node_wait_ms: dict[str, float] = {}
        self._freed: list[Claim] = []  # claims of the flights follow() ended, given back together
        self._ahead: Ahead | None = None  # on_block's, while it acts
        self.late_pending = 0  # pending updates acted on only after their block was sealed (left to the sealed path)

    # --- one block ---------------------------------------------------------------------------------------------
    def on_block(
        self,
        state: MarketState,
        positions: Sequence[UserPosition],
        seen_at: float,
        *,
        follow: bool = True,
        ahead: Ahead | None = None,
    ) -> list[ExecutionAttempt]:
        """Act on `positions` (the users the watcher found below HF 1 at `state.block`); returns this block's
        attempts (sent, dry-run or skipped). Then follows what earlier blocks sent (a settled attempt frees its
        user).

        Whatever the number of users: one batch reads the block (header, pools, inventory); the plans, largest
        debts first, go out in two chunks (the FIRST_CHUNK largest, then the rest; in one when at most
        CHUNKED_ABOVE users are ready), each claimed in one Redis round trip, verified in one call behind what the
        block already sent, and sent in one batch (under the nonce lock, nonces in plan order).

        `ahead`: acting before the next block is sealed, on `state`'s prices after the pending updates `ahead`
        describes (the pre-confirmation lane; attempts are recorded with trigger "pending", `seen_at` is when the
        update was seen)."""
        self.stages_ms = {}
        # What is in flight is followed once per block (the hot path's second call of a block skips it), first for
        # the users below 1 now (whether theirs landed, was dropped or reverted decides whether they are free), and
        # the rest once the block's own transactions are out: receipts, replacements and cancels of other users
        # win no race of this block (measured on the 100k devnet: 5 ms p50, 60 ms max in front of every send).
        if follow:
            began = time.perf_counter()
            self.follow(state, positions, users={p.user.lower() for p in positions})
            self._stage_add("follow", began)
        self._ahead = ahead
        try:
            return self._act(state, positions, seen_at)
        finally:
            self._ahead = None
            if follow:
                began = time.perf_counter()
                self.follow(state, positions)
                self._stage_add("follow", began)

    def _act(self, state: MarketState, positions: Sequence[UserPosition], seen_at: float) -> list[ExecutionAttempt]:
        read_began = time.perf_counter()
        busy = {f.attempt.user for f in self.in_flight.values()}
        # a user without a profitable plan is planned again only once its position or a price of its reserves
        # changed (dust, bad debt, a pool too shallow: measured on the 100k devnet, thousands of such users below 1
        # cost most of the planning time of every block)
        ready = [p for p in positions if p.user.lower() not in busy and account_data(p, state).health_factor < WAD]
        if not ready:
            return []
        try:
            header, pools, balances, head = self._read_block(
                state.block, ready, state, with_head=self._ahead is not None
            )
        except NodeUnavailable as error:  # nothing claimed yet: the next block tries again
            self._node_failed("reading the block", error)
            return []
        self._node_answered()
        if self._ahead is not None and head is not None and head > state.block:
            # the block the pending update aimed at is sealed already: sending now under the update's fees would
            # land late and behind everyone; the block's own evaluation sends for these users with the ladder's fees
            self.late_pending += 1
            return []
        base_fee = int(header.get("baseFeePerGas", "0x0"), 16)
        self._next_base_fee = next_base_fee(header)
        eth_price = state.by_id[self.venue.eth_reserve_id].price
        self._costs = CostInputs(self.venue.flash_premium_bps, DEFAULT_GAS_UNITS, base_fee, 0, eth_price)
        self._min_base = max(1, int(usd_e8(self.config.min_profit_usd)) * state.base_currency_unit // 10**8)
        start = _Model(dict(pools), dict(balances), dict(self.inventory))
        earlier = self._sent_in_block(state.block)
        for stage in earlier:  # sent earlier in this block (the fast lane): pending, not in the state read
            start.apply(stage.plan)
        clock = time.perf_counter()
        self.stages_ms["read"] = (clock - read_began) * 1e3
        # the largest debts first: planned (and sent) in this order, so the most valuable land first and each plan
        # meets the pools and the inventory our earlier transactions in the block leave
        ready.sort(key=lambda p: -account_data(p, state).total_debt_base)
        out: list[ExecutionAttempt] = []
        plans: list[tuple[LiquidationPlan, UserPosition]] = []
        model = start.copy()
        chunk_start = model.copy()
        chunk = FIRST_CHUNK if len(ready) > CHUNKED_ABOVE else len(ready)
        planned = 0
        for position in ready:
            # the rest next block (still below 1): at most max_per_block sent, and at most PLANS_PER_SEND x that
            # planned (after a price move thousands of users without a profitable plan are planned again: 200 ms
            # on the 100k devnet before this bound)
            if (
                len(earlier) + len(plans) >= self.config.max_per_block
                or planned >= PLANS_PER_SEND * self.config.max_per_block
            ):
                self.deferred += 1
                continue
            user = position.user.lower()
            # a user without a profitable plan is planned again only once its position, a price of its reserves, or
            # the pools and inventory it could use changed (dust, bad debt, a pool too shallow: on the 100k devnet
            # thousands of such users below 1 took most of every block's planning time)
            memo = (fingerprint(position, state, position.legs), model.view(position))
            if self.no_plan.get(user) == memo:
                self.unplanned[user] = state.block
                continue
            began = time.perf_counter()
            plan = self._plan(position, state, model)
            self._stage_add("plan", began)
            planned += 1
            if plan is None:
                self.unplanned[user] = state.block
                self.no_plan[user] = memo
                continue
            self.no_plan.pop(user, None)
            plans.append((plan, position))
            model.apply(plan)  # our next transaction in this block meets the pool and inventory after it
            if len(plans) >= chunk:  # the largest go out now; the rest are planned while they travel
                sent = self._send_chunk(plans, state, seen_at, chunk_start, base_fee, eth_price, out)
                if sent is None:  # the node or Redis failed: nothing more this block
                    self.inventory = model.inventory
                    return out
                earlier, plans, chunk = self._sent_in_block(state.block), [], len(ready)  # then all the rest
                chunk_start = model.copy()
        if plans:
            self._send_chunk(plans, state, seen_at, chunk_start, base_fee, eth_price, out)
        self.inventory = model.inventory
        return out

    def _stage_add(self, name: str, began: float) -> None:
        """Time spent in a stage since `began`, added to the block's (a block's chunks add up)."""
        self.stages_ms[name] = self.stages_ms.get(name, 0.0) + (time.perf_counter() - began) * 1e3

    def _send_chunk(
        self,
        plans: list[tuple[LiquidationPlan, UserPosition]],
        state: MarketState,
        seen_at: float,
        start: _Model,
        base_fee: int,
        eth_price: int,
        out: list[ExecutionAttempt],
    ) -> bool | None:
        """Claim, verify and send `plans` (planned from the model `start`, after what this block already sent);
        None when Redis or the node failed (the block stops there), else whether anything was sent."""
        began = time.perf_counter()
        staged = self._stage_all(plans, state, seen_at)
        self._stage_add("claim", began)
        if staged is None:
            return None
        if not staged:
            return False
        # live: the sender's nonce lock from the verification to the send, so that the nonce is read in the same
        # batch as the verification (one round trip fewer per block: measured ~3-5 ms on anvil, whose "pending"
        # count rebuilds its pending block) and no other executor process can take it in between
        locked = self.nonce_lock.held() if self.config.live else contextlib.nullcontext(True)
        with locked as ok:
            if not ok:
                reason = "nonce lock not acquired (held elsewhere, or Redis did not answer)"
                for stage in staged:
                    self.guard.release_unsent(stage.claim)
                    skipped = ExecutionAttempt(
                        attempt_key=stage.claim.token, outcome="skipped", reason=reason, **stage.base
                    )
                    out.append(self._final(skipped))
                return False
            try:
                began = time.perf_counter()
                # the pending nonce comes back with the simulation (one round trip, under the nonce lock)
                sendable, nonce = self._verify_all(staged, state, base_fee, eth_price, out)
                # a simulation already ran each transaction after the ones before it that succeed; one by one
                # against the latest state, the later ones were planned for pools the failed ones would have moved
                # (dry-run: nothing lands, nothing to correct)
                if self.config.live and self._simulate_supported is False and len(sendable) < len(staged):
                    sendable, nonce = self._replan_after_failures(
                        staged, sendable, state, start, base_fee, eth_price, out
                    )
                self._stage_add("verify", began)
            except NodeUnavailable as error:  # nothing was sent: the claims go back
                self._node_failed("verifying", error)
                for stage in staged:
                    self.guard.release_unsent(stage.claim)
                return None
            if not sendable:
                return False
            began = time.perf_counter()
            attempts = self._send_all(sendable, state, nonce)
            self._stage_add("send", began)
        out += attempts
        return any(a.tx_hash is not None for a in attempts)

    def _plan(self, position: UserPosition, state: MarketState, model: _Model) -> LiquidationPlan | None:
        """The precomputed plan's pair, amount and mode while the position is the one it was built for, evaluated
        exactly at this state (one evaluation, ~35x cheaper than the search: a crossing user's plan was made the block
        before, at the prices it would cross at), else the full search."""
        options = {
            "liquidator": self.venue.liquidator,
            "timestamp": state.timestamp + self.config.block_time,
            "min_profit_base": self._min_base,
            "inventory": model.inventory or None,
        }
        record = self.precomputed.hint(position) if self.precomputed is not None else None
        if record is not None:
            pair, amount = (record["collateral_id"], record["debt_id"]), record["debt_to_cover"]
            mode = record.get("mode", "flash")
            plan = plan_at(position, state, model.pools, self._costs, *pair, amount, mode, **options)
            if plan is not None:
                self.precomputed_hits += 1
                return plan
        return plan_liquidation(position, state, model.pools, self._costs, **options)

    def _replan_after_failures(
        self,
        staged: list[_Staged],
        sendable: list,
        state: MarketState,
        start: _Model,
        base_fee: int,
        eth_price: int,
        out: list,
    ) -> tuple[list, int | None]:
        """Some transactions failed verification (one by one, against the latest state) and will not be sent: the
        later ones were planned against pools and inventory that counted the failed ones' swaps and repayments.
        Re-plan every later one on a pool or inventory a failed one touched (against the model without the failed
        ones), verify the final list again, and send in the original order."""
        passed = {id(stage) for stage, _a, _c in sendable}
        failed_keys: set = set()
        model = start.copy()
        redo: list[_Staged] = []
        keep: list[_Staged] = []
        for stage in staged:
            if id(stage) not in passed:
                failed_keys |= _touches(stage.plan)
                continue
            if not (_touches(stage.plan) & failed_keys):
                keep.append(stage)
                model.apply(stage.plan)
                continue
            plan = self._plan(stage.position, state, model)
            if plan is None:
                self.guard.release_unsent(stage.claim)
                reason = "no profitable plan once earlier transactions failed verification"
                out.append(
                    self._final(
                        ExecutionAttempt(attempt_key=stage.claim.token, outcome="skipped", reason=reason, **stage.base)
                    )
                )
                continue
            fresh = self._restage(stage, plan)
            redo.append(fresh)
            model.apply(plan)
        self.inventory = model.inventory
        kept = {id(k) for k in keep}
        if not redo:  # the nonce: read at the send (no simulation here, none read with the verification)
            return [item for item in sendable if id(item[0]) in kept], None
        # the final order verified again as a whole: a simulation runs each transaction after the ones before it
        order = {id(stage.claim): k for k, stage in enumerate(staged)}
        final = sorted(keep + redo, key=lambda stage: order[id(stage.claim)])
        return self._verify_all(final, state, base_fee, eth_price, out)

    def _restage(self, stage: _Staged, plan: LiquidationPlan) -> _Staged:
        """The same claim and user with another plan."""
        return self._staged(plan, stage.claim, stage.base, stage.position)

    def _stage_all(self, plans: list, state: MarketState, seen_at: float) -> list[_Staged] | None:
        """The claims (one round trip for all) and the transactions of `plans`, those whose claim was granted. A
        user another attempt holds is left out; when Redis did not answer, None: nothing is staged (no attempt is
        recorded: the outage is one event, which the guard logs once when it starts and once when it ends, not a
        skipped attempt per user per block)."""
        # Claimed per user, not per pair: two executors reading the pools a moment apart may choose different
        # pairs for one user, and both would send. One attempt in flight per user; a settled one frees it.
        wanted = [Opportunity(self.market, plan.user, ANY_ASSET, ANY_ASSET) for plan, _p in plans]
        claims = self.guard.claim_all(wanted, state.block)
        if any(claim.reason == UNAVAILABLE for claim in claims):  # all of them then: none was granted
            return None
        seen = {"market": self.market, "mode": self.mode, "block_seen": state.block, "seen_at": seen_at}
        seen["trigger"] = "sealed" if self._ahead is None else "pending"  # a sealed block, or a pending update
        return [
            self._staged(plan, claim, {**seen, "user": plan.user}, position)
            for (plan, position), claim in zip(plans, claims, strict=True)
            if claim.reason != TAKEN
        ]

    def _staged(self, plan: LiquidationPlan, claim: Claim, seen: dict, position: UserPosition) -> _Staged:
        """`plan`'s transaction and its attempt's fields (`seen`: market, mode, block seen, user)."""
        pair = self.venue.pair_for(plan.collateral_id, plan.debt_id)
        # minProfit on chain: the gas this plan was charged, so a smaller liquidation than planned (a competitor
        # took part first) reverts instead of running at a loss
        data = plan_calldata(plan, pair, max(1, plan.costs.gas), compact=self.venue.compact)
        tx = {"from": self.venue.operator, "to": self.venue.liquidator, "data": "0x" + data.hex()}
        base = {
            **seen,
            "collateral_asset": plan.collateral_asset,
            "debt_asset": plan.debt_asset,
            "debt_to_cover": plan.debt_to_cover,
            "expected_profit_usd": plan.profit_usd,
            "expected_profit_debt": plan.profit,
        }
        return _Staged(plan, claim, tx, base, position)

    def _verify_all(
        self, staged: list[_Staged], state: MarketState, base_fee: int, eth_price: int, out: list
    ) -> tuple[list[tuple[_Staged, ExecutionAttempt, LadderCosts]], int | None]:
        """Pending verification of every staged transaction, then the gas ladder's fees. Dry-run attempts and
        skipped ones go to `out`; what may be sent is returned, in order, with the sender's pending nonce when the
        verification read it (live, eth_simulateV1: the same round trip), else None.

        `eth_simulateV1` (geth 1.14.9+, op-geth, reth, anvil): the whole batch in ONE call, in nonce order, in a block
        at the landing time on top of the latest state, as it will run (our priority fees put it ahead of the
        block's other traffic): each transaction's exact gas used, its revert, or its Liquidated event, whose
        profit is then the expected one (measured in `liq arena`: gas used one by one against the latest state was
        off by up to 6 % for transactions behind others of ours, and a 20 % priority fee made that a 1.2 % profit
        gap). Nodes without it: a batch of `eth_createAccessList`, each against the latest state alone (one
        execution each; eth_estimateGas searches with ~15). The limit is the gas used x GAS_LIMIT_BPS."""
        results, nonce = self._simulate(staged, state) if self._simulate_supported is not False else (None, None)
        if results is None:
            results = self._access_lists(staged)
        sendable = []
        for stage, (used, failure, event) in zip(staged, results, strict=True):
            if failure is not None:
                self.guard.release_unsent(stage.claim)
                out.append(
                    self._final(
                        ExecutionAttempt(
                            attempt_key=stage.claim.token,
                            outcome="skipped",
                            reason=f"verification: {failure}"[:300],
                            **stage.base,
                        )
                    )
                )
                continue
            plan = stage.plan
            debt = state.by_id[plan.debt_id]
            # debt units, before gas: what the contract itself sees (the simulated event's, else the plan's)
            gross = event.profit if event is not None else plan.profit + plan.costs.gas
            stage.simulated = event
            gas_limit = used * GAS_LIMIT_BPS // 10_000
            profit_wei = max(0, gross) * debt.price * 10**18 // (debt.unit * eth_price)
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
            if self._ahead is not None and self._ahead.fee_cap is not None:
                fees = _under(fees, self._ahead.fee_cap)
                if fees.max_fee_per_gas < self._next_base_fee:
                    self.guard.release_unsent(stage.claim)
                    why = "the price update's fees leave no room to land behind it at the next base fee"
                    skipped = ExecutionAttempt(
                        attempt_key=stage.claim.token, outcome="skipped", reason=why, **stage.base
                    )
                    out.append(self._final(skipped))
                    continue
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
        return sendable, nonce

    def _simulate(self, staged: list[_Staged], state: MarketState) -> tuple[list[tuple] | None, int | None]:
        """(gas used, None, Liquidated event) or (None, why, None) per transaction, simulated in order in one block
        at the landing time, and the sender's pending nonce read in the same batch (live only; None if not read);
        no results when the node has no eth_simulateV1 (remembered: not asked again)."""
        # behind what this block already sent (the fast lane's transactions are pending: not in the latest state)
        # and, acting before the block is sealed, behind the price updates that are to land first (on the node's
        # pending state, which holds what this block already sent too)
        ahead = self._ahead or Ahead()
        earlier = self._sent_in_block(state.block) if ahead.block_tag != "pending" else []
        calls = [{**call, "gas": hex(SIMULATION_GAS)} for call in ahead.calls]
        calls += [
            {"from": self.venue.operator, "to": self.venue.liquidator, "data": s.tx["data"], "gas": hex(SIMULATION_GAS)}
            for s in [*earlier, *staged]
        ]
        block = {"calls": calls, "blockOverrides": {"time": hex(state.timestamp + self.config.block_time)}}
        requests = [("eth_simulateV1", [{"blockStateCalls": [block], "validation": False}, ahead.block_tag])]
        if self.config.live:  # the nonce the send will use, in the same round trip (the nonce lock is held)
            requests.append(("eth_getTransactionCount", [self.venue.operator, "pending"]))
        nonce = None
        try:
            answers = self.rpc.batch(requests, raise_on_error=False)
            if len(answers) > 1 and isinstance(answers[1], str):
                nonce = int(answers[1], 16)
            if isinstance(answers[0], RpcError):
                raise answers[0]
            result = answers[0]
        except RpcError as error:
            if error.code in (-32601, -32600) or "not found" in str(error).lower() or "not supported" in str(error):
                log.info("the node has no eth_simulateV1 (%s): verifying with eth_createAccessList", error)
                self._simulate_supported = False
                return None, None
            return [(None, f"eth_simulateV1: {error}", None)] * len(staged), nonce
        self._simulate_supported = True
        out = []
        for call in result[0]["calls"][len(ahead.calls) + len(earlier) :]:
            if call.get("status") != "0x1":
                data = call.get("returnData") or ""
                why = (call.get("error") or {}).get("message") or "reverted"
                out.append((None, f"{why} {REVERTS.get(data[:10], data[:138])}".strip(), None))
                continue
            found = liquidated_events(call.get("logs", []), self.venue.liquidator)
            out.append((int(call["gasUsed"], 16), None, found[0] if found else None))
        return out, nonce

    def _access_lists(self, staged: list[_Staged]) -> list[tuple]:
        # acting before the block: the node's pending state, where it holds the update (a node without
        # eth_simulateV1 cannot run our call behind an update it only has in its mempool)
        tag = "latest" if self._ahead is None else "pending"
        answers = self.rpc.batch([("eth_createAccessList", [s.tx, tag]) for s in staged], raise_on_error=False)
        out = []
        for listed in answers:
            failed = listed if isinstance(listed, RpcError) else (listed or {}).get("error") or not listed
            if failed or "gasUsed" not in listed:
                out.append((None, str(failed or listed), None))
            else:
                out.append((int(listed["gasUsed"], 16), None, None))
        return out

    def _send_all(self, sendable: list, state: MarketState, first: int | None = None) -> list[ExecutionAttempt]:
        """Sign every transaction with consecutive nonces from `first` (the pending nonce read with the
        verification; read here when it was not) and send them in one batch (the caller holds the nonce lock)."""
        out = []
        if first is None:  # the pending count: transactions of this key sent by others take their nonces first
            try:
                first = int(self.rpc.call("eth_getTransactionCount", self.venue.operator, "pending"), 16)
            except NodeUnavailable as error:
                self._node_failed("reading the nonce", error)
                for stage, _attempt, _costs in sendable:
                    self.guard.release_unsent(stage.claim)
                return out
        signed = [
            self.signer.sign(_unsigned(stage.tx, stage.fees, first + k)) for k, (stage, *_r) in enumerate(sendable)
        ]
        lost = None
        try:
            answers = self.channel.send_many([s.raw for s in signed])
        except Exception as error:  # no answer (connection lost, timeout): the node may have them all
            self._node_failed("sending", error)
            # each keeps its claim and is followed by its hash, known before sending: included, or found in no
            # pool and its nonce free (dropped: released), never sent again meanwhile
            lost = f"sent, the node's answer lost ({type(error).__name__}): followed by its hash"
            answers = [None] * len(signed)
        sent_at = time.time()
        waited = {
            seen: answered_s((self.rpc, self._sender), seen, sent_at) * 1e3
            for seen in {a.seen_at for _s, a, _c in sendable}
        }
        gaps, refused = [], []
        for (stage, attempt, costs), tx, answer in zip(sendable, signed, answers, strict=True):
            self.node_wait_ms[attempt.attempt_key] = waited[attempt.seen_at]
            if len(self.node_wait_ms) > NODE_WAIT_KEPT:  # a long-running executor keeps the recent ones
                del self.node_wait_ms[next(iter(self.node_wait_ms))]
            if isinstance(answer, RpcError):
                self.guard.release_unsent(stage.claim)
                out.append(self._final(attempt.with_outcome("skipped", reason=f"send refused: {answer}"[:300])))
                gaps.append(tx.nonce)
                refused.append(answer)
                continue
            attempt = attempt.with_outcome(
                "sent", sent_at=sent_at, block_sent=state.block, tx_hash=tx.hash, nonce=tx.nonce, reason=lost
            )
            pending = Pending(stage.fees, state.block)
            ids = (stage.plan.debt_id, self.venue.eth_reserve_id, stage.plan.collateral_id)
            prices = tuple(state.by_id[r].price for r in ids)
            self.in_flight[attempt.attempt_key] = InFlight(
                attempt,
                stage.plan,
                stage.tx,
                tx.nonce,
                pending,
                costs,
                [tx.hash],
                stage.claim,
                prices=prices,
                simulated=stage.simulated,
            )
            self._record(attempt)
            self._sent_in_block(state.block).append(stage)
            out.append(attempt)
        # what the node said it took (None per transaction; none known when its answer was lost)
        took = 0 if lost else sum(1 for answer in answers if not isinstance(answer, RpcError))
        self._refusals(gaps, refused, len(signed), took)
        # a refused nonce below an accepted one would hold it back: a self-transfer fills it (refused nonces above
        # every accepted one hold nothing back: the next send takes them)
        accepted = [tx.nonce for tx, answer in zip(signed, answers, strict=True) if not isinstance(answer, RpcError)]
        for nonce in gaps:
            if accepted and nonce < max(accepted):
                cancel = {"to": self.venue.operator, "gas": CANCEL_GAS, "data": "0x", "value": 0}
                self._sign_and_send(cancel, sendable[0][0].fees, nonce)
        return out

    def _refusals(self, nonces: list[int], errors: list[RpcError], count: int, took: int) -> None:
        """One line per batch for the sends the node refused (a wave of 40 refused was 40 lines), and once per
        outage that the sender cannot pay for gas (its liquidations pay in the debt asset, gas in ETH: a sender
        left without ETH is refused everything until it is topped up), once when the node takes its sends again."""
        if nonces:
            log.warning("%d of %d sends refused (nonces %s): %s", len(nonces), count, _spans(nonces), errors[0])
        if any("insufficient funds" in str(error).lower() for error in errors):
            if not self._short_of_gas:
                log.warning(
                    "the sender %s cannot pay for gas: its transactions are refused until it holds ETH again",
                    self.venue.operator,
                )
            self._short_of_gas = True
        elif self._short_of_gas and took:
            log.warning("the sender %s pays for gas again: sending resumes", self.venue.operator)
            self._short_of_gas = False

    def _sent_in_block(self, block: int) -> list[_Staged]:
        """What this executor sent while acting on `block` (a second call for the block plans and simulates behind
        it); forgotten at the next block."""
        if self._sent_block != block:
            self._sent_block, self._sent = block, []
        return self._sent

    def venue_state(self, state: MarketState, users: Sequence[UserPosition]) -> tuple[PoolReserves, CostInputs]:
        """The pools these users' plans may sell on and the costs of a transaction landing in the next block, at
        `state.block` (one batch): what a precomputed plan is built with."""
        header, pools, _balances, _head = self._read_block(state.block, users, state)
        eth_price = state.by_id[self.venue.eth_reserve_id].price
        base_fee = int(header.get("baseFeePerGas", "0x0"), 16)
        return pools, CostInputs(self.venue.flash_premium_bps, DEFAULT_GAS_UNITS, base_fee, 0, eth_price)

    def _read_block(self, block: int, users: Sequence[UserPosition], state: MarketState, with_head: bool = False):
        """One batch: the block's header (base fee), and for every pair these users' plans may sell on its
        reserves and its two token balances; with `with_head`, the node's head too (else None)."""
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
        if with_head:  # acting before the next block: is it still to come?
            requests.append(("eth_blockNumber", []))
        answers = self.rpc.batch(requests, raise_on_error=False)
        head = answers.pop() if with_head else None
        head = int(head, 16) if isinstance(head, str) else None
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
        return header, pools, balances, head

    def _send(self, tx: dict, fees: Fees, nonce: int) -> tuple[int, str, float] | None:
        """One transaction (a replacement, a cancel) under the sender's nonce lock: (nonce, hash, time accepted)
        or None when nothing was sent."""
        with self.nonce_lock.held() as ok:
            return self._sign_and_send(tx, fees, nonce) if ok else None

    def _sign_and_send(self, tx: dict, fees: Fees, nonce: int) -> tuple[int, str, float] | None:
        signed = self.signer.sign(_unsigned(tx, fees, nonce))
        try:
            self.channel.send(signed.raw)
        except RpcError as error:
            log.warning("send refused (nonce %d): %s", nonce, error)
            return None
        except Exception as error:  # no answer: the node may have it; followed by its hash like one it took
            self._node_failed("sending", error)
        return nonce, signed.hash, time.time()

    # --- what is in flight -------------------------------------------------------------------------------------
    def follow(self, state: MarketState, positions: Sequence[UserPosition], users: set[str] | None = None) -> None:
        """Receipts of every transaction in flight sent before this block (of `users` only, lower case, when
        given): final outcomes recorded; the rest waits, is replaced with bumped fees, or cancelled when its user
        is no longer liquidatable."""
        if not self.in_flight:
            return
        try:
            self._follow(state, positions, users)
        finally:  # the claims of what ended, given back in one round trip
            freed, self._freed = self._freed, []
            self.guard.release_all(freed)

    def _follow(self, state: MarketState, positions: Sequence[UserPosition], users: set[str] | None) -> None:
        # what this block sent (or replaced, or followed already) cannot have a new receipt yet
        flights = [
            f
            for f in self.in_flight.values()
            if f.pending.sent_block < state.block
            and f.followed_at != state.block
            and (users is None or f.attempt.user.lower() in users)
        ]
        for flight in flights:
            flight.followed_at = state.block
        if not flights:
            return
        hashes = [h for f in flights for h in f.hashes]
        pushed = self.channel.take_receipts(hashes)  # came back with their send: not asked for again
        asked = [h for h in hashes if h not in pushed]
        # the sender's mined count first: a block landing between the two reads then shows as receipts, never as
        # a nonce used by someone else; then whether the node still has each transaction (a mined one it keeps)
        try:
            answers = self.rpc.batch(
                [("eth_getTransactionCount", [self.venue.operator, "latest"])]
                + [("eth_getTransactionReceipt", [h]) for h in asked],
                raise_on_error=False,
            )
            receipts = dict(zip(asked, answers[1:], strict=True)) | pushed
            # whether the node still has the ones without a receipt (a mined one it keeps): asked only for those,
            # most blocks none (what was sent the block before landed in this one)
            missing = [h for h in hashes if not isinstance(receipts[h], dict)]
            held = self.rpc.batch([("eth_getTransactionByHash", [h]) for h in missing], raise_on_error=False)
        except NodeUnavailable as error:  # everything stays in flight, claims held: followed when it answers
            self._node_failed("following what is in flight", error)
            return
        self._node_answered()
        used_nonces = int(answers[0], 16) if isinstance(answers[0], str) else 0
        known = {h for h, tx in zip(missing, held, strict=True) if isinstance(tx, dict)}
        liquidatable = {p.user.lower() for p in positions if account_data(p, state).health_factor < WAD}
        header = None
        for flight in flights:
            receipt = next((receipts[h] for h in flight.hashes if isinstance(receipts.get(h), dict)), None)
            if receipt is not None:
                self._settle(flight, receipt, state)
                continue
            if used_nonces > flight.nonce:  # mined, but by none of our hashes: another sender of this key
                self._end(flight, "replaced", "the nonce was used by a transaction this executor did not send")
                continue
            if not known.intersection(flight.hashes) and state.block > flight.pending.sent_block:
                # in no pool and its nonce free (never delivered, or evicted): it cannot land, the user is free
                # again; a new send takes the same nonce, so this one could never land as well
                self._end(flight, "dropped", "the node has no such transaction and its nonce is unused")
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

    def _end(self, flight: InFlight, outcome: str, reason: str) -> None:
        """A flight that ends without a receipt of ours: its user freed, its final state recorded."""
        del self.in_flight[flight.attempt.attempt_key]
        if flight.claim is not None:
            self._freed.append(flight.claim)
        self._final(flight.attempt.with_outcome(outcome, reason=reason))

    def _settle(self, flight: InFlight, receipt: dict, state: MarketState) -> None:
        del self.in_flight[flight.attempt.attempt_key]
        if flight.claim is not None:  # settled: what is left of the position is a new opportunity
            self._freed.append(flight.claim)
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
            if flight.simulated is not None:  # the simulation of the landing block: the contract's own figures
                sim = flight.simulated
                wanted = (sim.debt_repaid, sim.collateral_received, sim.swap_out)
            elif plan.collateral_id == plan.debt_id:  # one token both ways: the contract sees the net change
                wanted = (max(0, repaid - seized), max(0, seized - repaid), 0)
            else:
                wanted = (repaid, seized, plan.costs.swap_out if plan.mode == "flash" else 0)
            if (event.debt_repaid, event.collateral_received, event.swap_out) != wanted:
                position = int(receipt.get("transactionIndex", "0x0"), 16)
                self.mismatches.append((flight.attempt.user, block, event, wanted, position))
            coll = state.by_id[plan.collateral_id]
            now = (debt.price, eth_price, coll.price)
            debt_price, planned_eth, coll_price = flight.prices if flight.prices[0] else now
            # acting before the block, the oracle of its block is the pending update's the plan was simulated on:
            # the contract's own valuation is the expected one (the lane may have priced only the first of a block's
            # updates when it acted, the simulation on the pending state had them all: 5-11 % apart on 1-3
            # transactions a run of `liq arena --trigger pending` before)
            if plan.mode == "inventory" and flight.attempt.trigger != "pending":
                # the collateral is kept: valued as the plan valued it (the contract values it at the oracle of its
                # block, which may have moved since)
                kept = event.collateral_received * coll_price * debt.unit // (debt_price * coll.unit)
                earned = kept - event.debt_repaid
            else:
                earned = event.profit
            realized = earned * debt_price / debt.unit / unit - paid * planned_eth / 10**18 / unit
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
        except (RpcError, NodeUnavailable):
            return None
        for entry in logs:
            liquidator = LIQUIDATION_CALL.decode(entry)["liquidator"]
            if liquidator.lower() != self.venue.liquidator.lower():
                return liquidator, entry["transactionHash"], int(entry["blockNumber"], 16)
        return None

    def _node_failed(self, what: str, error: BaseException) -> None:
        if not self._node_down:
            self._node_down = True
            log.warning(
                "node unreachable while %s (%s): nothing new is sent; what is in flight is followed when it answers",
                what,
                type(error).__name__,
            )

    def _node_answered(self) -> None:
        if self._node_down:
            self._node_down = False
            log.warning("node answers again: sending resumes")

    # --- records -----------------------------------------------------------------------------------------------
    def _record(self, attempt: ExecutionAttempt) -> None:
        if self.recorder is not None:
            self.recorder.record(attempt)

    def _final(self, attempt: ExecutionAttempt) -> ExecutionAttempt:
        self.attempts.append(attempt)
        self._record(attempt)
        return attempt
