"""`liq backtest --sweep --json` end to end on the session devnet with a tiny grid: every point graded from one read
of the chain, the current settings' figures equal to a plain `liq backtest` of the same range (the one-pass replay
of several engines changes nothing), the frontier and the recommendation."""

from __future__ import annotations

import json

import pytest

from liq_pipeline.backtest.sweep import FIGURES
from liq_pipeline.devnet import actions
from liq_pipeline.devnet.simulate import SimConfig, simulate
from liq_pipeline_tests.commands.clirun import lines, liq_at_once

SHOCK = {"WETH": 0.88, "WBTC": 0.88, "AERO": 0.75}
GRID = (
    "--grid",
    "PREDICTIVE_HORIZON_SEC=20,40",
    "--grid",
    "PREDICTIVE_HF_BUFFER_BPS=40",
    "--grid",
    "PREDICTIVE_ADVERSE_SHOCK_BPS/PREDICTIVE_EXTREME_SHOCK_BPS=200/400",  # the defaults: the current point inside
    "--grid",
    "PREDICTIVE_VOLATILITY_SCALING=false,true",
)
OTHER = {
    "PREDICTIVE_ENABLED": True,
    "PREDICTIVE_HORIZON_SEC": 40,
    "PREDICTIVE_HF_BUFFER_BPS": 40,
    "PREDICTIVE_ADVERSE_SHOCK_BPS": 200,
    "PREDICTIVE_EXTREME_SHOCK_BPS": 400,
    "PREDICTIVE_VOLATILITY_SCALING": True,
}


@pytest.mark.integration
@pytest.mark.slow
def test_the_sweep_grades_every_point_from_one_read_of_the_chain(chain, devnet_data_dir_of, cli_env, tmp_path):
    first = int(chain.rpc.call("eth_blockNumber"), 16) + 1
    calm = SimConfig(blocks=10, seed=11, shock_probability=0.0, arrivals_per_block=0.0, liquidation_delay=2)
    simulate(chain.rpc, chain.market, calm, chain.users, dex=None)
    prices = actions.oracle_prices(chain.rpc, chain.market)
    actions.set_prices(chain.rpc, chain.market, {s: int(prices[s] * f) for s, f in SHOCK.items()})
    simulate(chain.rpc, chain.market, SimConfig(**{**calm.__dict__, "seed": 12}), chain.users, dex=None)
    last = int(chain.rpc.call("eth_blockNumber"), 16)
    # DATA_DIR named (the session devnet's pid file and market.json): the commands run in directories of their own
    env = {**cli_env, "DATA_DIR": str(devnet_data_dir_of), "PREDICTIVE_ENABLED": "true", "PREDICTIVE_HORIZON_SEC": "20"}
    blocks = ["--from-block", str(first), "--to-block", str(last)]

    # the grid's points, in order: (20 s, false), (20 s, true) = the current settings (volatility scaling is on by
    # default), (40 s, false), (40 s, true).
    # OTHER, the first point beside the current one with volatility scaling: its plain backtest runs at once
    # with the sweep and the current settings' plain backtest (three commands that only read the chain), and the
    # sweep's report must name it so (asserted below), so the run is the one the check needs
    env_other = {**env, **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in OTHER.items()}}
    swept, plain, plain_other = liq_at_once(
        [
            ["backtest", *blocks, "--sweep", *GRID, "--out", str(tmp_path / "sweep"), "--json"],
            ["backtest", *blocks, "--out", str(tmp_path / "plain"), "--json"],
            ["backtest", *blocks, "--json"],
        ],
        env=env,
        cwd=tmp_path / "runs",
        settings=[{}, {}, env_other],
    )
    assert swept.returncode == 0, swept.stderr
    report = json.loads(swept.stdout)
    assert plain.returncode == 0, plain.stderr
    alone = json.loads(plain.stdout)

    points = report["sweep"]
    assert len(points) == 4  # 2 horizons x 2 volatility scalings; the current settings (20 s, true) among them
    assert [p["point"] for p in points] == [0, 1, 2, 3]
    current = [p for p in points if p["label"] == "current"]
    assert len(current) == 1 and current[0]["settings"]["PREDICTIVE_HORIZON_SEC"] == 20
    for p in points:
        assert set(FIGURES) <= set(p) and set(p["scenarios"]) == {"baseline", "adverse", "extreme"}
        assert p["crossings"] == alone["crossings"] > 0  # one truth for every point
        assert p["recall_at_cross"] == 1.0  # exact decisions, whatever the look-ahead
    # the current point, replayed with the others, grades as the plain backtest does
    for key in FIGURES:
        assert current[0][key] == alone[key] == report[key], key
    assert report["scenarios"] == alone["scenarios"]
    longer = next(p for p in points if p["settings"]["PREDICTIVE_HORIZON_SEC"] == 40 and p is not current[0])
    assert longer["candidates_per_block_p50"] >= current[0]["candidates_per_block_p50"]

    frontier = report["frontier"]
    assert frontier and all(p["recall_at_cross"] == 1.0 for p in frontier)
    best = report["recommended"]
    assert best["recall_at_cross"] == 1.0 and best["point"] in [p["point"] for p in frontier]
    assert best["flagged_ahead_share"] >= current[0]["flagged_ahead_share"]
    assert best["env"].startswith("PREDICTIVE_ENABLED=true ")
    markdown = (tmp_path / "sweep" / "report.md").read_text()
    assert "## Sweep" in markdown and best["env"] in markdown
    assert "](plots/sweep_frontier.png)" in markdown
    assert (tmp_path / "sweep" / "plots" / "sweep_frontier.png").read_bytes().startswith(b"\x89PNG")
    assert all((tmp_path / "sweep" / "sweep" / f"point-{p['point']}" / "lake" / "flags").is_dir() for p in points)
    # a point replayed beside the current one keeps only its flags: it grades as a plain backtest with its settings
    other = next(p for p in points if p["label"] != "current" and p["settings"]["PREDICTIVE_VOLATILITY_SCALING"])
    assert other["settings"] == OTHER  # the settings `plain_other` ran with
    assert plain_other.returncode == 0, plain_other.stderr
    alone_other = json.loads(plain_other.stdout)
    for key in FIGURES:
        assert other[key] == alone_other[key], key
    assert (
        other["scenarios"]["extreme"]["flagged_ahead_share"]
        == alone_other["scenarios"]["extreme"]["flagged_ahead_share"]
    )
    assert "report: " in lines(swept.stderr)[-1]


def test_the_grid_is_checked_before_anything_is_read(cli_env, clean_env):
    blocks = ["backtest", "--from-block", "0", "--to-block", "5"]
    alone, bad = liq_at_once(
        [[*blocks, "--grid", "PREDICTIVE_HORIZON_SEC=60"], [*blocks, "--sweep", "--grid", "HORIZON=60"]],
        env=cli_env,
        cwd=clean_env,
    )
    assert alone.returncode == 2, ("--grid without --sweep", alone.stderr)
    assert lines(alone.stderr) == ["error: --grid is not valid without --sweep"]
    assert bad.returncode == 2 and len(lines(bad.stderr)) == 1, ("HORIZON=60", bad.stderr)
    assert lines(bad.stderr)[0].startswith("error: --grid 'HORIZON=60' is not valid: expected NAME[/NAME]=V[/V]")
