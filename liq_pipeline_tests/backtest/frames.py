"""Hand-built frames for the grading: a small market whose truth is known block by block, and predictors over it."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from liq_pipeline.lake.datasets.liquidation_outcomes import LIQUIDATION_SCHEMA

T0 = 1_767_225_600
BLOCK_TIME = 2
FIRST, LAST = 0, 40  # every frame covers these blocks


def ts(block: int) -> int:
    return T0 + BLOCK_TIME * block


def blocks(first: int = FIRST, last: int = LAST) -> pl.DataFrame:
    numbers = list(range(first, last + 1))
    return pl.DataFrame({"block": numbers, "block_timestamp": [ts(b) for b in numbers]})


def truth(below: dict[str, Iterable[int]], users: Iterable[str], first: int = FIRST, last: int = LAST) -> pl.DataFrame:
    """Every user at every block; `below[user]`: the blocks the Pool says HF < 1."""
    rows = []
    for user in users:
        under = set(below.get(user, ()))
        rows += [(b, user, b in under) for b in range(first, last + 1)]
    return pl.DataFrame(rows, schema={"block": pl.Int64, "user": pl.String, "liquidatable": pl.Boolean}, orient="row")


def predictions(flags: dict[str, dict[int, float]], scenario: str = "baseline") -> pl.DataFrame:
    """`flags[user] = {block: eta}` -> candidate rows of one scenario."""
    rows = [(b, user, scenario, eta) for user, at in flags.items() for b, eta in at.items()]
    schema = {"block": pl.Int64, "user": pl.String, "scenario": pl.String, "eta_sec": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def from_truth(frame: pl.DataFrame, scenario: str, where: pl.Expr, shift: int = 0) -> pl.DataFrame:
    """Candidate rows (ETA 0) at the truth rows matching `where`, `shift` blocks later."""
    return frame.filter(where).select(
        (pl.col("block") + shift).alias("block"),
        "user",
        pl.lit(scenario).alias("scenario"),
        pl.lit(0.0).alias("eta_sec"),
    )


def liquidations(rows: list[tuple[int, str]]) -> pl.DataFrame:
    """(block, user) -> LIQUIDATION_SCHEMA rows."""
    return pl.DataFrame(
        {
            "block_number": [b for b, _ in rows],
            "block_timestamp": [ts(b) for b, _ in rows],
            "log_index": list(range(len(rows))),
            "tx_hash": [f"0x{b:064x}" for b, _ in rows],
            "user": [u for _, u in rows],
            "collateral_asset": ["0xc0"] * len(rows),
            "debt_asset": ["0xd0"] * len(rows),
            "debt_to_cover": [10**18] * len(rows),
            "liquidated_collateral_amount": [10**18] * len(rows),
            "liquidator": ["0x11"] * len(rows),
            "receive_a_token": [False] * len(rows),
        },
        schema=LIQUIDATION_SCHEMA,
    )


def moves(at: dict[int, float], first: int = FIRST + 1, last: int = LAST) -> pl.DataFrame:
    """(block, move): `at` where given, 0.1 % elsewhere."""
    numbers = list(range(first, last + 1))
    return pl.DataFrame({"block": numbers, "move": [at.get(b, 0.001) for b in numbers]})
