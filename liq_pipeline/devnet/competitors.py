"""The simulator's rivals before the block (issue #15): Base's arena, where a price update is visible before its
block is sealed.

On Base a feed update sits in a Flashblock (~200 ms) whose order is final: whatever is sent after it lands behind
it, in the same block. The simulator emulates that on anvil (simulate.SimConfig.pending_window_ms > 0): the
block's price updates are sent first, on their own, with PRICE_UPDATE_PRIORITY_FEE (anvil orders a block by max
fee, so nothing anyone else sends is put ahead of them), the block stays open for the window, and anvil's
"pending" tag answers with the pool's transactions applied (verified on anvil 1.7.1: eth_call on "pending" after
the updates were sent reads the new prices, and getUserAccountData there equals the mined block's, the next
block's timestamp included once evm_setNextBlockTimestamp set it). Who acts in that window, besides a public bot:

- "preconf" (PRECONF_COMPETITOR): a pre-confirmation liquidator. Once the updates are out (and after the public
  bot reacted: it is no faster than the bot), it reads every borrower's health factor at the pending state and
  liquidates in the same block each one below 1, at the competitor's priority fee, behind the updates.
- "svr" (SVR_SEARCHER): Chainlink SVR as on Base since 2026. The winner of the update's auction backruns it: for
  each user whose HF crosses below 1 because of the block's updates (>= 1 at the previous sealed block, < 1 behind
  the updates), one liquidationCall right behind the update (SVR_PRIORITY_FEE: just under the update's, above
  anyone else's). The public never sees such an update without its backrun (the auction's bundle): the crossings
  are computed before anything is sent (svr_crossings: eth_simulateV1 of the updates, then the reads, in one
  simulated block), and the backrun and the updates go to the pool in one JSON-RPC batch, the backrun first (anvil
  adds a batch's transactions in order and announces each as it is added: with the updates first, an observer
  reacting to one could read the pool before the backrun was in it; the block's order is by fee all the same).
  With probability `svr_miss_rate` the auction does not act on a block's updates: they are held and published
  `svr_fallback_blocks` blocks later (Chainlink's fallback), with nobody's backrun.

The sealed-block competitor (accounts.COMPETITOR) keeps running in every mode.
"""

from __future__ import annotations

import dataclasses as dc
import random
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from eth_utils import keccak

from ..chain.multicall import CALLS_PER_AGGREGATE, MULTICALL3, decode_aggregate3, encode_aggregate3, eth_calls
from .accounts import COMPETITOR, derived_address
from .actions import LiquidationPick, LiquidationPlanner, account_data
from .errors import DevnetError
from .rpc import Rpc, RpcError
from .txs import ETH, Tx

GWEI = 10**9
WAD = 10**18
# The price update's tip when blocks are paced (devnet's ordinary traffic tips 0.001 gwei): far above what a
# liquidator's gas ladder pays (a share of its profit per gas; tens to hundreds of gwei on a large liquidation), so
# that anvil, which orders a block by max fee, puts the update first as Base's Flashblocks do. Its max fee follows
# (txs.Tx.params): the admin pays up to ~1 ETH an update (TOP_FEE_GAS_MONEY covers it).
PRICE_UPDATE_PRIORITY_FEE = 10_000 * GWEI
SVR_PRIORITY_FEE = PRICE_UPDATE_PRIORITY_FEE - 1  # right behind the update: under it, above anyone else
TOP_FEE_GAS_MONEY = 1_000_000 * ETH  # the admin's and the searcher's gas money when they tip at the top

PRECONF_COMPETITOR = derived_address("preconf-liquidator")
SVR_SEARCHER = derived_address("svr-searcher")
_SIMULATED_BLOCK_GAS = 10**9  # below_one_after's simulated block: at least the devnet's gas limit ...
_SIMULATED_GAS_PER_READ = 200_000  # ... more for many users (getUserAccountData: ~41k gas on the devnet)

COMPETITOR_MODES = ("sealed", "preconf", "svr")
ROLES = ("competitor", "preconf", "svr", "other")  # SimResult.liquidations_by's keys
_ROLE_OF = {COMPETITOR.lower(): "competitor", PRECONF_COMPETITOR.lower(): "preconf", SVR_SEARCHER.lower(): "svr"}


def role_of(liquidator: str) -> str:
    """ "competitor", "preconf", "svr", or "other" (a public bot: the arena's executor)."""
    return _ROLE_OF.get(liquidator.lower(), "other")


def with_fee(txs: Sequence[Tx], priority_fee: int) -> list[Tx]:
    return [tx if tx.priority_fee == priority_fee else dc.replace(tx, priority_fee=priority_fee) for tx in txs]


_ACCOUNT_DATA = keccak(text="getUserAccountData(address)")[:4].hex()


def below_one_pending(rpc: Rpc, pool: str, users: Sequence[str]) -> list[str]:
    """The users whose getUserAccountData says HF < 1 at anvil's pending state (the pool's transactions applied).
    Through Multicall3's aggregate3 (installed on the devnet; a plain batch where it is not): every eth_call on
    the pending tag makes anvil build the pending block anew, so 2,000 users cost ~110 ms this way against
    ~290 ms as a plain batch."""
    if not users:
        return []
    requests = [
        ("eth_call", [{"to": pool, "data": "0x" + _ACCOUNT_DATA + "0" * 24 + u.lower().removeprefix("0x")}, "pending"])
        for u in users
    ]
    answers = eth_calls(rpc, requests, MULTICALL3)
    return _below_one(users, ["" if isinstance(a, RpcError) else a for a in answers], "at the pending block")


def _below_one(users: Sequence[str], answers: Sequence[str], where: str) -> list[str]:
    """The users whose getUserAccountData answer ("" when it failed: DevnetError) has debt and HF < 1."""
    below = []
    for user, answer in zip(users, answers, strict=True):
        body = answer.removeprefix("0x")
        if len(body) < 6 * 64:
            raise DevnetError(f"Pool.getUserAccountData({user}) failed {where}: {answer!r}")
        debt, health_factor = int(body[64:128], 16), int(body[320:384], 16)  # words 1 and 5
        if debt and health_factor < WAD:
            below.append(user)
    return below


def _account_call(pool: str, user: str) -> tuple[str, str]:
    return pool, "0x" + _ACCOUNT_DATA + "0" * 24 + user.lower().removeprefix("0x")


def below_one_after(
    rpc: Rpc, pool: str, users: Sequence[str], updates: Sequence[Tx], head: int, timestamp: int
) -> list[str]:
    """The users whose getUserAccountData says HF < 1 in the block after the sealed block `head`, at `timestamp`,
    once `updates` ran first in it: what below_one_pending reads once they are in the pool, read WITHOUT sending
    them. One eth_simulateV1 on `head` per Multicall3 aggregate of getUserAccountData (the updates' calls, then the
    aggregate, in one simulated block), all in one batch: 2,000 users take ~90 ms, as the pending read does (one
    simulation holding every aggregate: ~145 ms). Where Multicall3 has no code, one simulation with a call per
    user. Verified on anvil 1.7.1: every user's getUserAccountData there equals the pending state's once the
    updates are sent, the timestamp set ahead (200 and 2,000 users)."""
    if not users:
        return []
    reads = [_account_call(pool, u) for u in users]
    chunks = [reads[i : i + CALLS_PER_AGGREGATE] for i in range(0, len(reads), CALLS_PER_AGGREGATE)]
    aggregates = [([{"to": MULTICALL3, "data": encode_aggregate3(chunk)}], len(chunk)) for chunk in chunks]
    try:
        results = [
            r
            for chunk, (answer,) in zip(chunks, _simulated(rpc, updates, aggregates, head, timestamp), strict=True)
            for r in decode_aggregate3(answer, len(chunk))
        ]
    except ValueError:  # no Multicall3 at `head` (a call to an empty account answers "0x"): one call per user
        direct = [{"to": to, "data": data} for to, data in reads]
        (answers,) = _simulated(rpc, updates, [(direct, len(users))], head, timestamp)
        results = [(True, answer) for answer in answers]
    return _below_one(users, [answer if ok else "" for ok, answer in results], f"behind the updates after {head}")


def _simulated(
    rpc: Rpc, updates: Sequence[Tx], groups: Sequence[tuple[Sequence[dict], int]], head: int, timestamp: int
) -> list[list[str]]:
    """Per group of (read calls, users they read): the reads' return data ("0x" for a call that failed), run in a
    simulated block of their own (number head + 1, at `timestamp`) behind the calls of `updates` (each of which
    must succeed); one eth_simulateV1 a group, in one batch. A block's reads share its gas: its limit is raised for
    many users (getUserAccountData costs ~41k gas on the devnet: its 1e9 limit holds ~24k)."""
    calls = [
        {"from": tx.sender, "to": tx.to, "data": tx.data, "gas": hex(tx.gas), "value": hex(tx.value)} for tx in updates
    ]
    update_gas = sum(tx.gas for tx in updates)
    requests = []
    for reads, users in groups:
        gas_limit = max(_SIMULATED_BLOCK_GAS, update_gas + _SIMULATED_GAS_PER_READ * users)
        block = {"blockOverrides": {"number": hex(head + 1), "time": hex(timestamp), "gasLimit": hex(gas_limit)}}
        requests.append(("eth_simulateV1", [{"blockStateCalls": [block | {"calls": calls + list(reads)}]}, hex(head)]))
    out = []
    for (simulated,) in rpc.batch(requests):
        answers = simulated["calls"]
        for tx, answer in zip(updates, answers, strict=False):
            if answer.get("status") != "0x1":
                raise DevnetError(f"{tx.label or tx.data[:10]} fails in a simulation on block {head}: {answer}")
        out.append([a["returnData"] if a.get("status") == "0x1" else "0x" for a in answers[len(updates) :]])
    return out


def svr_crossings(
    rpc: Rpc, pool: str, users: Sequence[str], head: int, timestamp: int, updates: Sequence[Tx]
) -> list[str]:
    """Users below 1 behind the block's price `updates` (below_one_after: computed before they are sent, as the
    auction does before its bundle goes out) whose HF was >= 1 at the sealed block `head`: the crossings the
    updates cause (the auction's backrun)."""
    below = below_one_after(rpc, pool, users, updates, head, timestamp)
    if not below:
        return []
    before = account_data(rpc, pool, below, head)
    return [u for u, d in zip(below, before, strict=True) if d.health_factor >= WAD]


def plan_behind_updates(
    planner: LiquidationPlanner,
    users: Sequence[str],
    block: int,
    timestamp: int,
    new_prices: Mapping[str, int],
    liquidator: str,
    positions_at: int | str | None = None,
) -> tuple[list[LiquidationPick], list[str]]:
    """LiquidationPlanner.plan for a liquidation known to run behind the block's price updates: one state only,
    the market at `block` with `new_prices` and the block's `timestamp` (plan() otherwise asks for acceptance under
    both orders, which refuses every user that the update itself pushes below 1). Positions are read at
    `positions_at` ("pending": with the pool's transactions; default `block`)."""
    return planner.plan(users, block, timestamp, new_prices, liquidator, behind_updates=True, positions_at=positions_at)


class Delivery(NamedTuple):
    answers: dict[str, int]  # what goes out in this block: the auction's, and held answers falling back
    auctioned: bool  # the auction acted on this block's updates (its winner backruns them)
    missed: bool  # this block had updates and the auction did not act: held for the fallback
    fallback: bool  # held answers go out in this block


@dc.dataclass
class SvrDelivery:
    """When a block's updates reach the chain under SVR. The auction acts on a block's updates (they go out in
    that block, with its winner's backrun) except with probability `miss_rate` (its own seeded rng, drawn once per
    block with updates; the simulator's rng is untouched): then they are held `fallback_blocks` blocks and go out
    without a backrun. A held answer that a newer one of the same feed overtakes is dropped (a feed never goes
    back to an older answer)."""

    seed: int
    miss_rate: float
    fallback_blocks: int
    held: list[tuple[int, dict[str, int]]] = dc.field(default_factory=list)  # (block index due, answers)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"liq-devnet-svr:{self.seed}")

    def schedule(self, index: int, publish: Mapping[str, int]) -> Delivery:
        released: dict[str, int] = {}
        waiting = []
        for due, answers in self.held:
            if due <= index:
                released.update(answers)
            else:
                waiting.append((due, answers))
        auctioned = bool(publish) and self.rng.random() >= self.miss_rate
        now = dict(publish) if auctioned else {}
        if publish and not auctioned:
            waiting.append((index + self.fallback_blocks, dict(publish)))
        for _, answers in waiting:
            for symbol in now:
                answers.pop(symbol, None)
        self.held = [(due, answers) for due, answers in waiting if answers]
        released = {s: a for s, a in released.items() if s not in now}
        return Delivery(released | now, auctioned, bool(publish) and not auctioned, bool(released))
