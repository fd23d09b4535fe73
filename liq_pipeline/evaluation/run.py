"""One predictive evaluation for one block, as a Dagster run (a fresh process) performs it.

State survives between runs in Redis: the positions frame and its block, the price windows, the dirty-user stream.
A run (1) attaches to that state, or bootstraps it from the chain when there is none; (2) re-reads the users that
the blocks since then touched, plus any dirty users a crashed run left unacknowledged; (3) evaluates every user in
every scenario; (4) writes candidates to Redis and to the lake, the new positions and price windows to Redis, and
the latency KPI; (5) acknowledges the dirty users; (6) checks a sample of users against getUserAccountData.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field

import polars as pl
import redis

from ..cache import open_market_cache
from ..cache.kpis import check_kpi_name, get_kpis
from ..chain.discovery import discover_market
from ..chain.ground_truth import user_account_data
from ..chain.rpc import RpcClient
from ..config import Settings
from ..lake.datasets.liquidation_candidates import append_candidates
from ..lake.open import open_lake
from ..risk.evaluation import Evaluation
from ..risk.versions import rules_for
from .params import engine_params
from .start import start_tracker
from .tracker import EvaluationRecord, Tracker

log = logging.getLogger(__name__)

DIRTY_GROUP = "evaluation"
LATENCY_WINDOW = 200  # evaluations kept for the latency p95


@dataclass
class HfAgreement:
    sampled: int
    flips: int
    max_rel_err: float
    block: int
    disagreeing: list[str] = field(default_factory=list)


@dataclass
class EvaluationOutcome:
    block: int
    from_block: int
    result: Evaluation
    record: EvaluationRecord
    touched_users: int
    bootstrapped: bool
    redis: str  # "written", "deferred" (Redis unreachable: kept in memory, written on recovery)
    lake_ranges: list[str]
    hf_check: HfAgreement
    latency_p95_ms: float
    seconds: dict[str, float]


def _price_observations(tracker: Tracker) -> pl.DataFrame:
    rows = [(asset, ts, float(price)) for asset, window in tracker.prices.items() for ts, price in window]
    return pl.DataFrame(rows, schema={"asset": pl.String, "timestamp": pl.Int64, "price": pl.Float64}, orient="row")


def check_hf_agreement(rpc: RpcClient, tracker: Tracker, result: Evaluation, sample: int, seed: int) -> HfAgreement:
    """The engine's HF<1 decision against getUserAccountData for a sample: every user nearest HF = 1 first (where a
    wrong decision would hide), then random ones."""
    users = result.users.select("user", "hf_current")
    nearest = users.with_columns((pl.col("hf_current") - 1.0).abs().alias("d")).sort("d").head(sample // 2)
    rest = [u for u in users["user"].to_list() if u not in set(nearest["user"].to_list())]
    picked = nearest["user"].to_list() + random.Random(seed).sample(rest, min(len(rest), sample - nearest.height))
    truth = user_account_data(rpc, tracker.market.pool, picked, tracker.block)
    hf = dict(users.iter_rows())
    flips, worst, disagreeing = 0, 0.0, []
    for user in picked:
        chain = truth[user].health_factor
        if (hf[user] < 1.0) != (chain < 10**18):
            flips += 1
            disagreeing.append(user)
        if 0 < chain < 2**255:
            worst = max(worst, abs(hf[user] / (chain / 1e18) - 1.0))
    return HfAgreement(len(picked), flips, worst, tracker.block, disagreeing)


def _latency_p95(previous: str | None, latency_ms: float) -> tuple[str, float]:
    recent = json.loads(previous) if previous else []
    recent = ([*recent, round(latency_ms, 1)])[-LATENCY_WINDOW:]
    ordered = sorted(recent)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return json.dumps(recent), float(p95)


def evaluate_block(settings: Settings, block: int, from_block: int, observed_at: float) -> EvaluationOutcome:
    if settings.rpc_url is None or settings.aave_addresses_provider is None:
        raise ValueError("RPC_URL and AAVE_ADDRESSES_PROVIDER must be set for an evaluation run")
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    rules = rules_for(settings.aave_protocol_version)
    params = engine_params(settings)
    with settings.node_client() as rpc:
        market = discover_market(
            rpc, settings.aave_addresses_provider, block, rules, symbols=True, multicall=settings.multicall_address
        )
        cache = open_market_cache(settings, market.chain_id, market.pool)
        snapshot = cache.get_positions()
        bootstrapped = snapshot is None or snapshot.block >= block
        if bootstrapped:
            tracker = start_tracker(rpc, settings, market, rules, block)
            touched: list[str] = tracker.positions["user"].to_list()
        else:
            tracker = start_tracker(rpc, settings, market, rules, block, snapshot, cache.get_price_windows())
            # no PREDICTIVE_MAX_USERS_PER_TICK here: a run is a fresh process and could not carry deferred users
            # to the next one; the cap is the watcher's (its deferred users stay in memory, first in line)
            delta = tracker.advance(block)
            touched = list(delta.touched_users)
        seconds["refresh"] = time.perf_counter() - clock

        # dirty users: publish what this run re-reads; re-deliveries of a crashed run are re-read too
        cache.publish_dirty(block, touched)
        entries = _consume_dirty(cache)
        pending_users = sorted({u for e in entries if e.redelivered for u in e.users} - set(touched))
        if pending_users and not bootstrapped:
            tracker.refresh_users(pending_users)

        clock = time.perf_counter()
        result, record = tracker.evaluate(params, seen_at=observed_at)
        seconds["engine"] = time.perf_counter() - clock

        clock = time.perf_counter()
        outcome = cache.write_candidates(block, result.candidates)
        header = rpc.call("eth_getBlockByNumber", hex(block), False)  # the chain the snapshot belongs to
        cache.put_positions(block, tracker.positions, header["hash"] if header else None)
        if settings.borrowers_index_mode == "redis":  # ZSET user -> current HF
            cache.replace_borrower_index(block, result.users.select("user", pl.col("hf_current").alias("hf")))
        cache.put_price_windows(block, _price_observations(tracker))
        lake_ranges = [r.key for r in append_candidates(open_lake(settings), result.candidates)]
        record.written_at = time.time()
        recent, p95 = _latency_p95(_recent_latencies(cache), record.latency_ms)
        cache.set_kpis(
            {
                "last_evaluated_block": block,
                "latency_ms_last": round(record.latency_ms, 1),
                "latency_ms_p95": p95,
                "latency_ms_recent": recent,
                "users": record.users,
                **{f"candidates_{name}": result.candidates_per_scenario().get(name, 0) for name in _scenarios(params)},
            }
        )
        if entries:
            cache.ack(DIRTY_GROUP, [e.id for e in entries])
        seconds["write"] = time.perf_counter() - clock

        clock = time.perf_counter()
        hf_check = check_hf_agreement(rpc, tracker, result, settings.hf_check_sample, seed=block)
        seconds["hf_check"] = time.perf_counter() - clock
        # check outcomes as KPIs: the exporter turns them into liq_asset_check_passed for the alert rules

        cache.set_kpis(
            {
                check_kpi_name("liquidation_candidates", "hf_agreement"): int(hf_check.flips == 0),
                check_kpi_name("liquidation_candidates", "latency_p95"): int(p95 <= settings.kpi_latency_p95_ms),
            }
        )
    return EvaluationOutcome(
        block=block,
        from_block=from_block,
        result=result,
        record=record,
        touched_users=len(touched),
        bootstrapped=bootstrapped,
        redis=str(outcome),
        lake_ranges=lake_ranges,
        hf_check=hf_check,
        latency_p95_ms=p95,
        seconds=seconds,
    )


def _consume_dirty(cache) -> list:
    """Entries of the dirty-user stream for this group; none while Redis is down (the chain is re-read anyway)."""
    if not cache.reachable:
        return []
    try:
        return cache.dirty_queue.consume(DIRTY_GROUP, "evaluation", count=10_000)
    except redis.RedisError as error:
        log.warning("dirty-user stream unreadable (%s): evaluating from the chain's events only", type(error).__name__)
        return []


def _recent_latencies(cache) -> str | None:

    if not cache.reachable:
        return None
    try:
        kpi = get_kpis(cache.cache, ["latency_ms_recent"]).get("latency_ms_recent")
    except redis.RedisError:
        return None
    return kpi.value if kpi is not None and isinstance(kpi.value, str) else None


def _scenarios(params) -> list[str]:
    return [spec.name for spec in params.scenarios]
