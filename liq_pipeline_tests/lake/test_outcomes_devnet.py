"""After a real price shock and a real liquidationCall on the devnet: the engine's candidates go to the lake, and
liquidation_outcomes shows the LiquidationCall with what was predicted before it."""

from __future__ import annotations

import polars as pl
import pytest

from liq_pipeline.lake.datasets.borrower_snapshots import known_users_before
from liq_pipeline.lake.datasets.liquidation_candidates import NAME as CANDIDATES
from liq_pipeline.lake.datasets.liquidation_candidates import append_candidates, build_liquidation_candidates
from liq_pipeline.lake.datasets.liquidation_outcomes import NAME as OUTCOMES
from liq_pipeline.lake.datasets.liquidation_outcomes import build_liquidation_outcomes, miss_rate
from liq_pipeline.risk.evaluation import CANDIDATE_SCHEMA
from liq_pipeline.risk.params import EngineParams
from liq_pipeline.risk.scenarios import default_specs

pytestmark = pytest.mark.integration
PARAMS = EngineParams(scenarios=default_specs(["baseline", "adverse", "extreme"]))
STABLES = ("USDC", "DAI")


@pytest.fixture(scope="module")
def evaluated(history):
    """Candidates of the blocks from the shock to the liquidation's block, appended to the package lake."""
    users = known_users_before(history.lake, history.b.end + 1)
    blocks = range(history.shock_block, history.liquidation_block + 1)
    frame = build_liquidation_candidates(
        history.rpc,
        history.market,
        history.rules,
        history.b.start,
        history.b.end,
        params=PARAMS,
        users=users,
        blocks=blocks,
        stable_symbols=STABLES,
    )
    append_candidates(history.lake, frame)
    return frame


def test_candidates_of_every_evaluated_block_are_stored_in_their_range(history, evaluated):
    assert evaluated.schema == pl.Schema(CANDIDATE_SCHEMA)
    assert set(evaluated["block"]) == set(range(history.shock_block, history.liquidation_block + 1))
    victim = evaluated.filter((pl.col("user") == history.victim) & (pl.col("block") == history.shock_block))
    assert victim.height > 0 and victim["liquidatable_now"].all()  # underwater from the shock on
    stored = history.lake.read(CANDIDATES, history.b)
    assert stored.sort(["block", "user", "scenario"]).equals(evaluated.sort(["block", "user", "scenario"]))


def test_outcomes_show_the_liquidation_with_the_prediction_before_it(history, evaluated):
    outcomes = build_liquidation_outcomes(
        history.rpc,
        history.market,
        history.rules,
        history.b.start,
        history.b.end,
        candidates=history.lake.scan(CANDIDATES, history.a.start, history.b.end),
        events=history.lake.read("pool_events", history.b),
    )
    history.lake.write(OUTCOMES, history.b, outcomes)
    assert outcomes.height == 1
    row = history.lake.read(OUTCOMES, history.b).row(0, named=True)
    assert row["user"] == history.victim and row["block_number"] == history.liquidation_block
    assert row["debt_to_cover"] > 0 and row["liquidated_collateral_amount"] > 0
    assert row["flagged"] and row["flagged_block"] == history.shock_block
    assert row["lead_blocks"] == history.liquidation_block - history.shock_block == 10
    assert row["lead_seconds"] == 20  # blocks are 2 s apart on the devnet
    assert row["predicted_eta_sec"] == 0.0  # liquidatable at once
    assert miss_rate(outcomes) == 0.0


def test_a_liquidation_flagged_only_in_its_own_block_is_a_miss(history, evaluated):
    late = evaluated.filter(pl.col("block") >= history.liquidation_block)
    outcomes = build_liquidation_outcomes(
        history.rpc, history.market, history.rules, history.b.start, history.b.end, candidates=late
    )
    assert outcomes.height == 1 and not outcomes["flagged"][0] and outcomes["lead_blocks"][0] is None
    assert miss_rate(outcomes) == 1.0
