"""Frames shaped like the engine's outputs, small and deterministic."""

from __future__ import annotations

import polars as pl

from liq_pipeline.risk.evaluation import CANDIDATE_SCHEMA


def candidate_frame(block: int, users: list[int], scenarios=("baseline", "adverse"), eta_base: float = 0.0):
    rows = []
    for i, number in enumerate(users):
        for j, scenario in enumerate(scenarios):
            eta = eta_base + float((number * 7 + j * 3) % 170)
            rows.append(
                {
                    "user": f"0x{number:040x}",
                    "scenario": scenario,
                    "block": block,
                    "hf_current": 1.01 + i * 1e-4,
                    "hf_scenario": 0.99,
                    "hf_projected": 0.98,
                    "eta_sec": eta,
                    "liquidatable_now": eta == 0.0,
                    "debt_reserve": j,
                    "collateral_reserve": 1,
                    "close_factor": 0.5,
                    "debt_to_cover_base": 1234.5 + i,
                    "collateral_seized_base": 1300.25,
                    "protocol_fee_base": 6.5,
                    "expected_profit_base": 59.75 + block,
                }
            )
    return pl.DataFrame(rows, schema=CANDIDATE_SCHEMA)


def sorted_by_eta(frame: pl.DataFrame) -> pl.DataFrame:
    """The order read_candidates returns: ETA, then the ZSET member `user:scenario`."""
    member = pl.concat_str("user", pl.lit(":"), "scenario")
    return frame.with_columns(member.alias("_m")).sort("eta_sec", "_m").drop("_m")
