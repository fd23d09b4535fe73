"""`liq devnet verify-liquidations`: predicted liquidations against the real Pool, one per block, exactly.

On a fresh devnet (the state cache with N borrowers) or the running one: prices back to the market's initial ones,
then moved (devnet/liquidation_check.py's SHOCK) so that borrowers fall below HF 1; then in rounds over every
liquidatable borrower, liquidations with rotating collateral/debt pairs, debtToCover values and receiveAToken,
each predicted with `liquidation_outcome` from the block before and compared with the Pool (event amounts,
balances, flags, deficits, revert errors), until --liquidations have been done; a few validation reverts (healthy
user, collateral not enabled, debt not borrowed, and on V3.6 self-liquidation) close the run. V3.6 also seeds a
handful of borrowers placed for the cases (new addresses each run).

Exit code 1 when a prediction differs from the Pool or fewer than --liquidations liquidations could be made.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from ..chain.rpc import RpcClient
from ..devnet import actions, lifecycle, protocols
from ..devnet.accounts import GAS_MONEY, LIQUIDATOR
from ..devnet.borrowers import BorrowerRecord
from ..devnet.errors import DevnetError
from ..devnet.liquidation_check import (
    LiquidationChecker,
    amounts_for,
    borrowed,
    cases_of,
    enabled_collaterals,
    seed_case_users_36,
    shocked_prices,
    summary_counts,
)
from ..devnet.paths import borrowers_json_path, devnet_dir
from ..devnet.rpc import Rpc
from ..devnet.txs import Chain
from ..risk.exact import account_data
from ..risk.market import Leg
from ..risk.wadray import UINT256_MAX, WAD
from . import runtime

FRESH_DIR = "verify-liquidations"  # under DATA_DIR: the fresh devnet's own data dir (build, state cache)
MAX_ROUNDS = 60
EXAMPLES = 5
GRACE_SECONDS = 600  # the grace period of the last check (the run ends there: later attempts are not affected)


def run_verify_liquidations(
    data_dir: Path,
    liquidations: int,
    borrowers: int,
    seed: int = 0,
    use_running: bool = False,
    progress: Callable[[str], None] | None = None,
    protocol: str = protocols.DEFAULT_PROTOCOL,
) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    started = time.perf_counter()
    owned = None
    if use_running:
        devnet_rpc, market = lifecycle.attach(data_dir)
        directory = devnet_dir(data_dir)
    else:
        say(f"starting a fresh Aave V{protocol} devnet with {borrowers} borrowers")
        owned = lifecycle.up(data_dir / FRESH_DIR, borrowers=borrowers, seed=seed, protocol=protocol)
        market = owned.market
        devnet_rpc = Rpc(owned.node.url)
        directory = devnet_dir(data_dir / FRESH_DIR)
    try:
        users = list(BorrowerRecord.load(borrowers_json_path(directory.parent)).users)
        extras = protocols.read_extras(directory) if market.protocol_version != "3.0" else None
        l2_encoder = (extras or {}).get("l2_encoder")
        with RpcClient(devnet_rpc.url) as reader:
            checker = LiquidationChecker(devnet_rpc, reader, market, l2_encoder)
            # Every run from the market's initial prices (a --running devnet may have moved them): the case
            # borrowers are placed for those, and the shock is relative to them.
            actions.set_prices(devnet_rpc, market, {r.symbol: r.initial_price for r in market.reserves})
            if l2_encoder:
                say("seeding the V3.6 case borrowers")
                tag = f"verify-liquidations:{checker.head()}"
                users = seed_case_users_36(devnet_rpc, market, l2_encoder, tag) + users  # first in each round
            result = _run(checker, users, liquidations, say)
    finally:
        devnet_rpc.close()
        if owned is not None:
            lifecycle.down(data_dir / FRESH_DIR)
    result["borrowers"] = len(users)
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _run(checker: LiquidationChecker, users: list[str], target: int, say: Callable[[str], None]) -> dict[str, Any]:
    market = checker.devnet_market
    counts = summary_counts(checker.version)
    reasons: dict[str, int] = {}
    stats = {"liquidations": 0, "reverts_predicted": 0, "mismatches": 0, "attempts": 0}
    examples: list[dict[str, Any]] = []

    def record(attempt) -> None:
        stats["attempts"] += 1
        if not attempt.matched:
            stats["mismatches"] += 1
            if len(examples) < EXAMPLES:
                examples.append(
                    {
                        "user": attempt.user,
                        "collateral": checker.symbol[attempt.collateral],
                        "debt": checker.symbol[attempt.debt],
                        "debt_to_cover": str(attempt.amount),
                        "receive_a_token": attempt.receive,
                        "block": attempt.block,
                        "problems": [repr(p) for p in attempt.problems],
                    }
                )
            return
        if attempt.ok:
            stats["liquidations"] += 1
        else:
            stats["reverts_predicted"] += 1
            reasons[attempt.predicted.reason] = reasons.get(attempt.predicted.reason, 0) + 1
        for case in cases_of(attempt):
            counts[case] += 1

    prices = {r.symbol: r.initial_price for r in market.reserves}
    moved = shocked_prices(prices)
    say("moving prices: " + ", ".join(f"{s} x{moved[s] / prices[s]:.3f}" for s in sorted(moved)))
    actions.set_prices(checker.rpc, market, moved)
    checker.fund_liquidator()

    step = 0
    for round_ in range(MAX_ROUNDS):
        _, state, now = checker.snapshot(users)
        victims = [
            p
            for p in now.values()
            if enabled_collaterals(p) and borrowed(p) and account_data(p, state).health_factor < WAD
        ]
        say(f"round {round_ + 1}: {len(victims)} liquidatable, {stats['liquidations']}/{target} liquidations")
        if not victims:
            break
        for victim in victims:
            if stats["liquidations"] >= target:
                break
            collaterals, debts = enabled_collaterals(victim), borrowed(victim)
            collateral = collaterals[step % len(collaterals)]
            debt = debts[(step // 3) % len(debts)]
            amounts = amounts_for(victim, state, collateral, debt)
            record(checker.attempt(victim.user, collateral, debt, amounts[step % len(amounts)], step % 2 == 1))
            step += 1
        if stats["liquidations"] >= target:
            break

    say("validation reverts")
    for case in _validation_cases(checker, users):
        record(checker.attempt(*case))
    _, state, now = checker.snapshot(users)
    victim = next((p for p in now.values() if borrowed(p) and account_data(p, state).health_factor < WAD), None)
    if victim is not None:  # a paused reserve, then (3.1+) the grace period its unpausing starts: both refused
        coll, debt = enabled_collaterals(victim)[0], borrowed(victim)[0]
        checker.pause(debt, True)
        record(checker.attempt(victim.user, coll, debt, UINT256_MAX, False))
        checker.pause(debt, False, GRACE_SECONDS)
        if checker.rules.liquidation_grace_period:
            record(checker.attempt(victim.user, coll, debt, UINT256_MAX, False))
    return {
        "protocol_version": checker.version,
        "liquidations": stats["liquidations"],
        "reverts_predicted": stats["reverts_predicted"],
        "mismatches": stats["mismatches"],
        "attempts": stats["attempts"],
        "target": target,
        "cases": counts,
        "reverts_by_reason": dict(sorted(reasons.items())),
        "mismatch_examples": examples,
    }


def _validation_cases(checker: LiquidationChecker, users: list[str]) -> list[tuple]:
    """(user, collateral, debt, amount, receive, sender) the Pool must refuse: HF >= 1, collateral not enabled, debt
    not borrowed, and (V3.4+) self-liquidation."""
    _, state, now = checker.snapshot(users)
    positions = [p for p in now.values() if enabled_collaterals(p) and borrowed(p)]
    cases: list[tuple] = []
    healthy = next((p for p in positions if WAD < account_data(p, state).health_factor < UINT256_MAX), None)
    if healthy is not None:
        cases.append((healthy.user, enabled_collaterals(healthy)[0], borrowed(healthy)[0], UINT256_MAX, False))
    victim = next((p for p in positions if account_data(p, state).health_factor < WAD), None)
    if victim is None:
        return cases
    coll, debt = enabled_collaterals(victim)[0], borrowed(victim)[0]
    not_enabled = next((r for r in state.reserve_ids if not victim.legs.get(r, Leg()).collateral_enabled), None)
    not_borrowed = next((r for r in state.reserve_ids if not victim.legs.get(r, Leg()).scaled_variable_debt), None)
    if not_enabled is not None:
        cases.append((victim.user, not_enabled, debt, UINT256_MAX, False))
    if not_borrowed is not None:
        cases.append((victim.user, coll, not_borrowed, UINT256_MAX, True))
    if checker.rules.custom_errors:
        Chain(checker.rpc).set_balances([victim.user], GAS_MONEY)
        cases.append((victim.user, coll, debt, UINT256_MAX, True, victim.user))
    return [(*c, LIQUIDATOR) if len(c) == 5 else c for c in cases]


def main(
    liquidations: int, borrowers: int, seed: int, running: bool, as_json: bool, protocol: str | None = None
) -> int:
    """Exit code 0, or 1 when a prediction differs from the Pool or the target was not reached."""
    settings = runtime.settings()
    data_dir = Path(settings.data_dir)
    if running and protocol is not None:
        raise DevnetError("--protocol picks a fresh devnet's market: with --running the running one's is used")
    version = protocols.check_protocol(protocol if protocol is not None else settings.devnet_protocol_version)
    if as_json:
        result = run_verify_liquidations(data_dir, liquidations, borrowers, seed, running, protocol=version)
        print(json.dumps(result))
    else:
        with Console(stderr=True).status("verifying liquidations") as status:
            result = run_verify_liquidations(
                data_dir, liquidations, borrowers, seed, running, progress=status.update, protocol=version
            )
        out = Console(highlight=False)
        for key, value in result.items():
            out.print(f"{key:>20}  {value}")
    failed = result["mismatches"] or result["liquidations"] < liquidations
    return runtime.EXIT_UNHEALTHY if failed else 0
