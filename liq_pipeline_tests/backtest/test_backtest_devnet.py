"""`liq backtest` end to end on the session devnet (real anvil, real Aave V3, 200 seeded borrowers): a living
market with a price shock and a competitor liquidating, then the command through the CLI, checked against the
Pool's own answers read separately; and the truth reader's two paths (Multicall3, plain batch) against each other.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import polars as pl
import pytest

from liq_pipeline.backtest.datasets import PREDICTIONS, backtest_lake
from liq_pipeline.backtest.truth import NAME as TRUTH
from liq_pipeline.backtest.truth import first_seen, read_truth
from liq_pipeline.chain.multicall import MULTICALL3
from liq_pipeline.chain.rpc import RpcClient
from liq_pipeline.devnet import actions
from liq_pipeline.devnet.simulate import SimConfig, simulate
from liq_pipeline_tests.commands.clirun import lines, liq, liq_at_once

SHOCK = {"WETH": 0.85, "WBTC": 0.85, "AERO": 0.7}  # the share of each price left
KEYS = (
    "crossings",
    "recall_at_cross",
    "flagged_ahead_share",
    "precision_within_horizon",
    "lead_time_p50_s",
    "candidates_per_block_p50",
    "liquidations_onchain",
    "liquidations_unflagged",
)


def _head(chain) -> int:
    return int(chain.rpc.call("eth_blockNumber"), 16)


def _pool_crossings(chain, first: int, last: int) -> int:
    """Crossings counted from getUserAccountData read here (devnet actions: plain batches), block by block."""
    below_before = None
    count = 0
    for block in range(first - 1, last + 1):
        below = {
            user
            for user, data in zip(
                chain.users, actions.account_data(chain.rpc, chain.market.pool, chain.users, block), strict=True
            )
            if data.health_factor < 10**18
        }
        if below_before is not None:
            count += len(below - below_before)
        below_before = below
    return count


@pytest.mark.integration
@pytest.mark.slow
def test_backtest_grades_the_engine_against_the_pool(chain, devnet_data_dir_of, cli_env, tmp_path):
    first = _head(chain) + 1
    calm = SimConfig(blocks=15, seed=7, shock_probability=0.0, arrivals_per_block=0.0, liquidation_delay=2)
    simulate(chain.rpc, chain.market, calm, chain.users, dex=None)
    prices = actions.oracle_prices(chain.rpc, chain.market)
    actions.set_prices(chain.rpc, chain.market, {s: int(prices[s] * f) for s, f in SHOCK.items()})
    simulate(chain.rpc, chain.market, SimConfig(**{**calm.__dict__, "blocks": 15, "seed": 8}), chain.users, dex=None)
    last = _head(chain)

    out = tmp_path / "report"
    settings = {"PREDICTIVE_ENABLED": "true", "PREDICTIVE_HORIZON_SEC": "20"}
    argv = ["backtest", "--from-block", str(first), "--to-block", str(last), "--out", str(out), "--json"]
    # the command in a subprocess, and meanwhile the Pool's own answers read here (both only read the chain)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(liq, *argv, env={**cli_env, **settings}, cwd=tmp_path)
        pool_crossings = _pool_crossings(chain, first, last)
        result = running.result()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # one object, nothing else on stdout

    assert report["graded_from_block"] == first and report["blocks"] == last - first + 1
    for key in KEYS:
        assert key in report, key
        for name in ("baseline", "adverse", "extreme"):
            assert key in report["scenarios"][name], (name, key)
    assert report["crossings"] == pool_crossings > 0
    assert report["recall_at_cross"] == 1.0  # exact decisions: every crossing flagged at its block, every scenario
    assert all(s["recall_at_cross"] == 1.0 for s in report["scenarios"].values())
    assert report["recall_liquidatable"] == 1.0
    assert report["liquidations_onchain"] > 0  # the competitor liquidated after the shock
    assert report["by_price_move"][">5%"]["crossings"] > 0
    assert report["candidates_per_block_p50"] >= report["scenarios"]["baseline"]["candidates_per_block_p50"]

    # the report and the datasets, readable through the lake's store
    assert (out / "report.md").read_text().startswith(f"# Backtest of blocks {first}-{last}")
    assert json.loads((out / "report.json").read_text()) == report
    # the four plots beside it, linked from the Markdown
    for name in ("lead_time_histogram", "frontier", "eta_calibration", "candidates_per_block"):
        png = (out / "plots" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000, name
        assert f"](plots/{name}.png)" in (out / "report.md").read_text()
    lake = backtest_lake(out / "lake", 1000)
    predictions = lake.scan(PREDICTIONS).collect()
    assert predictions.filter(pl.col("block") >= first)["block"].n_unique() > 0
    truth = lake.scan(TRUTH, first, last).collect()
    assert truth["block"].n_unique() == last - first + 1
    assert "report: " in lines(result.stderr)[-1]


@pytest.mark.integration
def test_a_range_past_the_head_is_one_line(chain, devnet_data_dir_of, cli_env, tmp_path):
    head = _head(chain)
    result = liq("backtest", "--from-block", "0", "--to-block", str(head + 5), env=cli_env, cwd=tmp_path)
    assert result.returncode == 2
    assert lines(result.stderr)[-1] == f"error: --to-block {head + 5} is past the node's latest block {head}"


@pytest.mark.integration
def test_the_truth_reads_agree_through_multicall_and_plain_batches(chain):
    head = _head(chain)
    actions.mine_blocks(chain.rpc, 3)
    seen = pl.DataFrame({"user": chain.users, "first_block": [head] * len(chain.users)})
    seen = seen.with_columns(
        pl.when(pl.col("user") == chain.users[0]).then(head + 2).otherwise(head).alias("first_block")
    )
    blocks = range(head, head + 4)
    with RpcClient(chain.node.url) as rpc:
        through = read_truth(rpc, chain.market.pool, seen, blocks, MULTICALL3)
        plain = read_truth(rpc, chain.market.pool, seen, blocks, None)
        no_code = read_truth(rpc, chain.market.pool, seen, blocks, "0x" + "12" * 20)  # falls back per block
    assert through.equals(plain) and through.equals(no_code)
    assert through.height == 4 * len(chain.users) - 2  # the first user is known from head + 2 on
    data = actions.account_data(chain.rpc, chain.market.pool, chain.users[:5], head + 3)
    expected = {user: d.health_factor < 10**18 for user, d in zip(chain.users[:5], data, strict=True)}
    at = through.filter((pl.col("block") == head + 3) & pl.col("user").is_in(chain.users[:5]))
    assert dict(at.select("user", "liquidatable").iter_rows()) == expected


def test_first_seen_is_the_first_block_naming_a_user():
    events = pl.DataFrame(
        {"block_number": [5, 3, 9, 4], "user": ["b", "b", "a", "0x0000000000000000000000000000000000000000"]}
    )
    assert first_seen(events).rows() == [("a", 9), ("b", 3)]


def test_the_options_are_checked_before_anything_is_read(cli_env, clean_env):
    # the three cases, each a command of its own in a directory of its own (`liq_at_once`: clean_env/0, /1, /2)
    (clean_env / "1").mkdir()
    (clean_env / "1" / "taken").write_text("")
    cases = {
        "backwards": ["backtest", "--from-block", "10", "--to-block", "5"],
        "taken": ["backtest", "--from-block", "0", "--to-block", "5", "--out", "taken"],
        "nothing": ["backtest", "--from-block", "0", "--to-block", "5"],
    }
    backwards, taken, nothing = liq_at_once(list(cases.values()), env=cli_env, cwd=clean_env)
    assert backwards.returncode == 2, ("backwards", backwards.stderr)
    assert lines(backwards.stderr) == ["error: --to-block 5 is before --from-block 10"], "backwards"
    assert taken.returncode == 2, ("taken", taken.stderr)
    assert lines(taken.stderr) == ["error: --out 'taken' is not valid: it exists and is not a directory"], "taken"
    assert nothing.returncode == 2 and len(lines(nothing.stderr)) == 1, ("nothing", nothing.stderr)
    assert lines(nothing.stderr)[0].startswith("error: RPC_URL and AAVE_ADDRESSES_PROVIDER are not set"), "nothing"
