"""`liq harness`: evaluate a generated sample market and print the candidates."""

from __future__ import annotations

import json
import time

from rich.console import Console
from rich.table import Table

from ..config import Settings
from ..evaluation.params import engine_params
from ..risk.blas import use_one_blas_thread
from ..risk.engine import evaluate
from ..risk.params import trends_from_window
from ..risk.price_window import price_window_stats
from ..risk.synthetic import sample_market_state, sample_positions, sample_price_history
from ..risk.versions import rules_for
from . import runtime


def run_harness(settings: Settings, users: int, top: int, as_json: bool, console: Console) -> None:
    market = sample_market_state(rules_for(settings.aave_protocol_version))
    positions = sample_positions(market, users)
    history = sample_price_history(market, observations=settings.predictive_price_window + 1)
    stats = price_window_stats(history, settings.predictive_price_window, settings.predictive_ema_span)
    trends = trends_from_window(stats, {r.symbol: r.reserve_id for r in market.reserves})
    params = engine_params(settings.model_copy(update={"predictive_enabled": True}))  # it is the predictive harness

    start = time.perf_counter()
    result = evaluate(positions, market, params, trends)
    elapsed_ms = (time.perf_counter() - start) * 1000

    if as_json:
        for row in result.candidates.iter_rows(named=True):
            print(json.dumps(row, default=str))
        return
    counts = result.candidates_per_scenario()
    console.print(
        f"predictive-engine: protocol V{market.rules.version}, buffer={params.hf_buffer_bps}bps, "
        f"horizon={params.horizon_sec:g}s, scenarios={','.join(s.name for s in params.scenarios)}"
    )
    console.print(
        f"predictive-engine: evaluated {users:,} users at block {market.block} in {elapsed_ms:.1f} ms; "
        f"{result.exact_redecided} user-scenarios re-decided on the exact path; "
        f"liquidatable now: {int((result.users['hf_current'] < 1.0).sum())}"
    )
    symbols = {r.reserve_id: r.symbol for r in market.reserves}
    usd = market.base_currency_unit
    for spec in params.scenarios:
        rows = result.candidates.filter(result.candidates["scenario"] == spec.name).head(top)
        table = Table(title=f"{spec.name}: {counts.get(spec.name, 0)} candidates (ETA <= {params.horizon_sec:g}s)")
        for column in (
            "user",
            "hf now",
            "hf scen.",
            "hf proj.",
            "eta s",
            "debt",
            "coll.",
            "repay $",
            "profit $",
        ):
            table.add_column(column, justify="right" if column != "user" else "left")
        for row in rows.iter_rows(named=True):
            table.add_row(
                row["user"][:10] + "…",
                f"{row['hf_current']:.4f}",
                f"{row['hf_scenario']:.4f}",
                f"{row['hf_projected']:.4f}",
                f"{row['eta_sec']:.0f}",
                symbols.get(row["debt_reserve"], "?"),
                symbols.get(row["collateral_reserve"], "?"),
                f"{row['debt_to_cover_base'] / usd:,.2f}",
                f"{row['expected_profit_base'] / usd:,.2f}",
            )
        console.print(table)


def main(users: int, top: int, as_json: bool) -> None:
    settings = runtime.settings()
    use_one_blas_thread()
    run_harness(settings, users=users, top=top, as_json=as_json, console=Console(highlight=False))
