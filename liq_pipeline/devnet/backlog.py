"""Clear the seeded market's backlog of liquidatable users before a race is measured.

The devnet seeds ~10 % of its borrowers already below HF 1 (docs/devnet.md: the verify commands need them). A live
market has no such backlog: a user below 1 is liquidated within a block or two. `liq arena` and `liq bench-watch
--execute` measure the race for users who cross during the run, so before it starts the simulator's competitor
liquidates everyone below 1 (its own planner, `max uint` or the dust-safe amount, `CHUNK` liquidations a block)
until no one is left or a round frees nobody (bad debt, or dust the Pool refuses).
"""

from __future__ import annotations

from collections.abc import Sequence

from .accounts import COMPETITOR, GAS_MONEY
from .actions import LiquidationPlanner, account_data, liquidation_events, liquidation_txs, oracle_prices
from .market import Market
from .rpc import Rpc
from .txs import Chain

CHUNK = 200  # liquidations per block (~300k gas each: 60M, within the devnet's block gas limit)
MAX_ROUNDS = 8  # a close factor of 50 % leaves half: a few rounds clear a position


def clear_backlog(rpc: Rpc, market: Market, users: Sequence[str], block_time: int = 2) -> int:
    """Liquidate every user of `users` below HF 1, block by block; returns how many liquidations it took."""
    chain = Chain(rpc)
    planner = LiquidationPlanner(rpc, market)
    done = 0
    try:
        with chain.manual_mining():
            chain.set_balances([COMPETITOR], GAS_MONEY)
            for _ in range(MAX_ROUNDS):
                data = account_data(rpc, market.pool, users)
                below = [u for u, d in zip(users, data, strict=True) if d.total_debt_base and d.health_factor < 10**18]
                if not below:
                    break
                head, timestamp = chain.block_number(), chain.latest_timestamp()
                prices = oracle_prices(rpc, market, head)
                freed = 0
                for start in range(0, len(below), CHUNK):
                    picks, _hopeless = planner.plan(
                        below[start : start + CHUNK], head, timestamp + block_time, prices, COMPETITOR
                    )
                    if not picks:
                        continue
                    timestamp += block_time
                    executed = chain.execute(liquidation_txs(market, COMPETITOR, picks), timestamp, allow_revert=True)
                    head = executed.block
                    freed += len(liquidation_events(executed.logs, market.pool))
                done += freed
                if not freed:
                    break
    finally:
        planner.close()
    return done
