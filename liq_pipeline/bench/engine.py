"""`liq bench`: the engine against the bare kernel (the limit), the former preparing kernel and a plain Python loop.

Every figure is a ratio against a reference timed in the same process, because this machine (2 cores) is noisy:
- engine_s: median of `repeats` evaluations of every user's HF in every scenario from the position book, decisions
  re-decided exactly near 1 (the kernel's job, done exactly), by the engine's per-block pass: the fused kernel
  (risk/fused.py; `engine_pass` "fused", on `engine_threads` threads: the setting LIQ_FUSED_KERNEL, 1 by
  default) unless LIQ_FUSED_KERNEL=0 (health.evaluate_health, "numpy"), allocating its outputs in every call as
  evaluate() does per block, in the watcher's process memory settings (watch/process_memory.keep_freed_buffers:
  freed buffers are reused from the heap, not mapped and faulted in afresh; `freed_buffers_kept` says whether
  the platform's allocator took them); engine_prepared_s: the same pass into outputs prepared outside the timing
  (a FusedScratch), as the bare kernel's are (the engine does not keep them across blocks: docs/performance.md),
  and `engine_prepared_vs_kernel` = kernel_s / engine_prepared_s; the three are timed in turn, round by round
  (report.interleaved_medians), so that a slow minute of the machine slows all three;
  engine_first_s: the first pass (the fused kernel: numba compiles it, or loads it from its
  cache);
- pipeline_s: the whole evaluation (HF, projections, ETA, candidates with sizing); book_s: building the position
  book once from the exact Int128 positions (done when positions change, not per block);
- kernel_s: median of the bare kernel, the limit of what the engine computes: every user's HF in every scenario as
  `(W @ Fc.T) / (D @ Fd.T)` on the matrices the position book holds (W: LT-weighted scaled collateral, D: scaled
  debt, stable debt beside it where counted) and per scenario weights (index x price / 10^decimals / 10^4), one
  BLAS thread, inputs and outputs prepared outside the timing. `engine_vs_kernel` = kernel_s / engine_s is the
  engine's share of that limit; `kernel_check_rel_max` the largest relative difference between the kernel's HFs
  and the engine's float HFs (same sums) on a sample of users;
- kernel_prepared_s: median of the former reference, which starts from the scaled balances and multiplies them by
  indices, enabled flags and thresholds (four passes over users x reserves) before its two products: work the
  book does once per change of positions, not per block;
- loop_s: a plain per-user Python loop over a sample, scaled to all users;
- exact_mismatches: users whose HF<1 decision in any scenario differs from the exact integer path, checked on
  every user within 1e-3 of HF = 1 in any scenario plus a random sample of the others;
- the fields every benchmark reports (peak_rss_mb, params, machine, ...): liq_pipeline/bench/report.py.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable

import numpy as np
import polars as pl

from ..risk.blas import use_one_blas_thread
from ..risk.book import PositionBook, build_book
from ..risk.engine import evaluate
from ..risk.evaluation import CURRENT
from ..risk.exact import account_data
from ..risk.fused import FusedScratch, fused_available, fused_health
from ..risk.health import evaluate_health, float_health
from ..risk.market import MarketState, coll_col, debt_col, on_col, user_positions
from ..risk.params import AssetTrend, EngineParams
from ..risk.scenarios import default_specs, scenario_prices
from ..risk.synthetic import sample, sample_volatility
from ..risk.valuation import ScenarioPrices, collateral_weights, debt_weights, stable_weights
from ..risk.wadray import RAY
from ..watch.process_memory import keep_freed_buffers
from .report import BenchRun, Stopwatch, interleaved_medians, median_seconds, quiet

SCENARIO_ORDER = ("baseline", "adverse", "extreme")
# Share of users placed within 1e-6 of HF = 1, where only the exact path can decide: a stress far denser than a
# real market (there, a handful per 10,000 sit within 1e-4), kept so that the exact path is always exercised.
NEAR_ONE_SHARE = 0.005
KERNEL_CHECK_ROWS = 20_000  # users whose kernel HFs are compared with the engine's float HFs in every run


class BareKernel:
    """The limit: the HF of every user in every scenario as two products on prepared matrices and one division.

    The inputs are the position book's own matrices (LT-weighted scaled collateral, scaled debt) and one weight
    per reserve and scenario (index x price / 10^decimals, the collateral's divided by 10^4 for the bps), as the
    engine's float pass uses them; the outputs are allocated here, so `run` touches nothing but the products.
    """

    def __init__(self, book: PositionBook, market: MarketState, scenarios: list[ScenarioPrices]):
        ids = book.reserve_ids
        self.collateral = book.weighted
        self.fc = np.array([collateral_weights(market, s, ids) for s in scenarios]) / 10_000.0  # scenarios x reserves
        fd = np.array([debt_weights(market, s, ids) for s in scenarios])
        if book.has_stable:  # one debt matrix: stable balances beside the variable ones, their weights beside
            self.debt = np.ascontiguousarray(np.hstack([book.debt, book.stable]))
            fd = np.hstack([fd, np.array([stable_weights(market, s, ids) for s in scenarios])])
        else:
            self.debt = book.debt
        self.fd = fd
        shape = (book.height, len(scenarios))
        self.hf = np.empty(shape)
        self.owed = np.empty(shape)

    def run(self) -> np.ndarray:
        """users x scenarios: HF (inf: no debt and some collateral; NaN: neither)."""
        np.matmul(self.collateral, self.fc.T, out=self.hf)
        np.matmul(self.debt, self.fd.T, out=self.owed)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(self.hf, self.owed, out=self.hf)
        return self.hf


def kernel_check(book: PositionBook, market: MarketState, scenarios: list[ScenarioPrices], hf: np.ndarray, rows):
    """Largest relative difference between the kernel's HFs (`hf`, every user) and the engine's float HFs on the
    book's `rows` with debt: the engine's LT-weighted sums over its debt sums (before the floored average
    threshold of V3.0-3.4, which the kernel does not compute), and, where no average is floored, its float HF."""
    engine_hf, _band, weighted, _collateral, debt = float_health(book, market, scenarios, rows)
    mine = hf[rows]
    owes = debt > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        worst = _rel_diff(mine[owes], (weighted / 10_000.0 / debt)[owes])
        if not market.rules.floors_average_threshold:
            worst = max(worst, _rel_diff(mine[owes], engine_hf[owes]))
    return worst


def _rel_diff(values: np.ndarray, reference: np.ndarray) -> float:
    """Largest |value / reference - 1|, |value| where the reference is 0 (NaN counts as infinitely far)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.where(reference != 0, np.abs(values / reference - 1.0), np.abs(values))
    return float(np.max(np.nan_to_num(diff, nan=np.inf), initial=0.0))


class PreparingKernel:
    """The former reference: the HF of every user in every scenario as two dense matrix products, after
    multiplying the scaled balances by indices, enabled flags and thresholds (what the book does once)."""

    def __init__(self, positions: pl.DataFrame, market: MarketState, scenarios: list[ScenarioPrices]):
        ids = list(market.reserve_ids)
        self.scaled_coll = np.column_stack([positions[coll_col(r)].cast(pl.Float64).to_numpy() for r in ids])
        self.scaled_debt = np.column_stack([positions[debt_col(r)].cast(pl.Float64).to_numpy() for r in ids])
        enabled = np.column_stack([positions[on_col(r)].to_numpy() for r in ids])
        counts_any = market.rules.counts_zero_threshold_collateral
        lt_ok = np.array([counts_any or market.by_id[r].liquidation_threshold > 0 for r in ids])
        self.enabled = enabled & lt_ok
        emode = positions["emode"].to_numpy()
        categories = [0, *sorted(market.emode_categories)]
        table = np.array([[market.effective_threshold(c, r) for r in ids] for c in categories], dtype=float)
        self.thresholds = table[np.searchsorted(categories, emode)]
        units = np.array([float(market.by_id[r].unit) for r in ids])
        self.income = np.array([market.income_index[r] / RAY for r in ids]) / units
        self.debt_index = np.array([market.debt_index[r] / RAY for r in ids]) / units
        self.coll_prices = np.array([[float(s.collateral[r]) for s in scenarios] for r in ids])
        self.debt_prices = np.array([[float(s.debt[r]) for s in scenarios] for r in ids])

    def run(self) -> np.ndarray:
        # the same four passes; the enabled flags multiplied in place and the unweighted collateral freed before
        # the products (2026-12-07: ~160 MB less at the bench's peak memory, which this reference sets)
        weighted = self.scaled_coll * self.income
        weighted *= self.enabled
        weighted *= self.thresholds
        debt = self.scaled_debt * self.debt_index
        with np.errstate(divide="ignore", invalid="ignore"):
            return (weighted @ self.coll_prices) / (debt @ self.debt_prices) / 10_000.0


def _loop_hf(rows: list[dict], market: MarketState, scenarios: list[ScenarioPrices]) -> list[float]:
    """The plain loop: one user, one reserve, one scenario at a time, in Python floats."""
    out = []
    ids = market.reserve_ids
    for row in rows:
        for s in scenarios:
            weighted = 0.0
            debt = 0.0
            for r in ids:
                reserve = market.by_id[r]
                if row[on_col(r)] and (reserve.liquidation_threshold or market.rules.counts_zero_threshold_collateral):
                    amount = float(row[coll_col(r)]) * market.income_index[r] / RAY / reserve.unit
                    lt = market.effective_threshold(row["emode"], r)
                    weighted += amount * s.collateral[r] * lt
                if row[debt_col(r)]:
                    amount = float(row[debt_col(r)]) * market.debt_index[r] / RAY / reserve.unit
                    debt += amount * s.debt[r]
            out.append(weighted / 10_000.0 / debt if debt else float("inf"))
    return out


def run_bench(
    users: int,
    scenarios: int = 3,
    repeats: int = 5,
    loop_sample: int = 20_000,
    exact_sample: int = 20_000,
    version: str = "3.0",
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
    fused_threads: int | None = None,
) -> dict:
    """`fused_threads`: the engine's pass (EngineParams.fused_threads); None: the setting LIQ_FUSED_KERNEL."""
    say = progress or quiet
    if fused_threads is None:
        from ..config import load_settings

        fused_threads = int(load_settings().liq_fused_kernel)
    if not 1 <= scenarios <= len(SCENARIO_ORDER):
        raise ValueError(f"--scenarios must be 1 to {len(SCENARIO_ORDER)}")
    use_one_blas_thread()
    # the engine's pass as the watcher runs it: without this, its ~100 MB of outputs per call (1M x 3) were mapped
    # and faulted in afresh each time, 10-14 ms of a ~45 ms pass (docs/performance.md)
    freed_buffers_kept = keep_freed_buffers()
    run = BenchRun(
        "engine",
        {
            "users": users,
            "scenarios": scenarios,
            "repeats": repeats,
            "loop_sample": loop_sample,
            "exact_sample": exact_sample,
            "version": version,
            "seed": seed,
        },
    )
    say(f"generating {users:,} users")
    with Stopwatch() as generating:
        generated = sample(users, version=version, seed=seed, near_one_share=NEAR_ONE_SHARE)
    market, positions = generated.market, generated.positions
    trends = {r: AssetTrend(0.0, v) for r, v in sample_volatility().items()}
    specs = default_specs(list(SCENARIO_ORDER[:scenarios]))
    params = EngineParams(specs, horizon_sec=180, hf_buffer_bps=40, fused_threads=fused_threads)

    say("position book")
    with Stopwatch() as booking:
        book = build_book(positions, market)

    say("engine: health factors, every user, every scenario")
    priced = [scenario_prices(spec, market) for spec in params.scenarios]
    fused = fused_available(fused_threads)
    prepared = FusedScratch()  # the outputs, prepared outside the timing (BareKernel's are too)

    def engine_pass(scratch: FusedScratch | None):  # the engine's per-block pass (risk/engine.py)
        if not fused:
            return evaluate_health(book, market, priced)
        return fused_health(book, market, priced, threads=fused_threads, scratch=scratch)

    with Stopwatch() as first:
        engine_pass(prepared)  # warm-up (the fused kernel: compiled, or loaded from numba's cache)
    say("bare kernel: the product on prepared matrices, timed in turn with the engine")
    kernel = BareKernel(book, market, priced)  # the book's own matrices, and two outputs (48 MB at 1M x 3)
    kernel.run()  # warm-up
    timed = interleaved_medians(
        {
            "engine": functools.partial(engine_pass, None),  # what evaluate() does per block
            "engine_prepared": functools.partial(engine_pass, prepared),
            "kernel": kernel.run,
        },
        repeats,
    )
    engine_s, engine_prepared_s, kernel_s = timed["engine"], timed["engine_prepared"], timed["kernel"]
    del prepared  # ~115 MB at 1M users: not alive under the preparing kernel, which sets the peak memory
    check_rows = np.sort(np.random.default_rng(seed).permutation(users)[: min(users, KERNEL_CHECK_ROWS)])
    kernel_rel = kernel_check(book, market, priced, kernel.run(), check_rows)
    del kernel

    say("preparing kernel")
    preparing = PreparingKernel(positions, market, priced)
    preparing.run()
    kernel_prepared_s = median_seconds(preparing.run, repeats)
    del preparing

    # the pipeline after the reference kernels (since 2026-12-07): its evaluation stays alive to the exact check,
    # and the preparing kernel's temporaries on top of it set the bench's peak memory
    say("engine: full pipeline (projection, ETA, candidates, sizing)")
    result = evaluate(book, market, params, trends)
    pipeline_s = median_seconds(lambda: evaluate(book, market, params, trends).candidates, max(1, repeats // 2))

    say("python loop")
    sample_n = min(loop_sample, users)
    rows = positions.head(sample_n).to_dicts()
    with Stopwatch() as looping:
        _loop_hf(rows, market, priced)
    loop_s = looping.seconds * users / sample_n

    say("exact path check")
    hf_frame = result.users.select("user", *[pl.col(f"hf_{s.name}") for s in priced])
    checked, mismatches, rel_err = _exact_check(hf_frame, positions, market, priced, exact_sample, seed)

    engine_hz = users * len(priced) / engine_s
    return run.report(
        {
            "users": users,
            "scenarios": len(priced),
            "protocol_version": version,
            "engine_s": round(engine_s, 6),
            "engine_pass": "fused" if fused else "numpy",
            "engine_threads": fused_threads if fused else 1,
            "engine_prepared_s": round(engine_prepared_s, 6),
            "freed_buffers_kept": freed_buffers_kept,
            "engine_first_s": round(first.seconds, 4),
            "pipeline_s": round(pipeline_s, 6),
            "book_s": round(booking.seconds, 4),
            "kernel_s": round(kernel_s, 6),
            "kernel_prepared_s": round(kernel_prepared_s, 6),
            "kernel_check_rel_max": float(f"{kernel_rel:.3e}"),
            "loop_s": round(loop_s, 3),
            "loop_sample": sample_n,
            "engine_vs_kernel": round(kernel_s / engine_s, 3),
            "speedup_vs_loop": round(loop_s / engine_s, 1),
            "engine_vs_kernel_prepared": round(kernel_prepared_s / engine_s, 3),
            # like for like: the engine's outputs prepared outside the timing too, as the bare kernel's are
            "engine_prepared_vs_kernel": round(kernel_s / engine_prepared_s, 3),
            "user_scenarios_per_s": round(engine_hz),
            "kernel_user_scenarios_per_s": round(users * len(priced) / kernel_s),
            "exact_redecided": result.exact_redecided,
            "exact_checked": checked,
            "exact_mismatches": mismatches,
            # float HF values against the exact ones (decisions are exact regardless): dust legs dominate the max
            "rel_err_p50": rel_err[0],
            "rel_err_p99": rel_err[1],
            "rel_err_max": rel_err[2],
            "candidates": result.candidates_per_scenario(),
            "generate_s": round(generating.seconds, 3),
            "repeats": repeats,
        }
    )


def _exact_check(
    users: pl.DataFrame,
    positions: pl.DataFrame,
    market: MarketState,
    priced: list[ScenarioPrices],
    sample_size: int,
    seed: int,
) -> tuple[int, int, list[float]]:
    hf_columns = [f"hf_{s.name}" for s in priced]
    near = users.filter(pl.any_horizontal([(pl.col(c) - 1.0).abs() < 1e-3 for c in hf_columns]))["user"]
    rng = random.Random(seed)
    everyone = users["user"]
    picked = set(near.to_list())
    picked.update(everyone.gather(rng.sample(range(len(everyone)), min(sample_size, len(everyone)))).to_list())
    rows = positions.filter(pl.col("user").is_in(list(picked)))
    engine = users.filter(pl.col("user").is_in(list(picked))).select("user", *hf_columns)
    engine_by_user = {row[0]: row[1:] for row in engine.iter_rows()}
    mismatches = 0
    errors = []
    for position in user_positions(rows, market.reserve_ids):
        values = engine_by_user[position.user]
        for s, value in zip(priced, values, strict=True):
            exact = account_data(position, market, s.collateral, s.debt)
            if exact.liquidatable != (value < 1.0):
                mismatches += 1
            reference = exact.hf_float
            if 0.0 < reference < float("inf"):
                errors.append(abs(value / reference - 1.0))
    quantiles = np.quantile(errors, [0.5, 0.99, 1.0]) if errors else [0.0, 0.0, 0.0]
    return len(picked), mismatches, [float(f"{q:.3e}") for q in quantiles]


__all__ = ["CURRENT", "BareKernel", "PreparingKernel", "kernel_check", "run_bench"]
