"""Redis going away during evaluations: runs keep succeeding from the chain and the lake, and once Redis is back
the next run covers every block since the last state Redis holds (no block lost)."""

from __future__ import annotations

import polars as pl
import pytest

from liq_pipeline.cache.server import EmbeddedRedis
from liq_pipeline.defs.predictive.assets import evaluate_in_process
from liq_pipeline.devnet import actions

pytestmark = pytest.mark.integration


def _meta(result) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node("liquidation_candidates")[0].metadata.items()}


def test_evaluations_survive_a_redis_outage(chain, platform_env, instance, monkeypatch, tmp_path):
    server = EmbeddedRedis(tmp_path / "r")
    monkeypatch.setenv("REDIS_URL", server.ensure_running().url)  # a server we can stop, not the embedded default
    first = int(chain.rpc.call("eth_blockNumber"), 16)
    assert _meta(evaluate_in_process(instance, first, first))["redis"] == "written"

    server.stop()
    prices = actions.oracle_prices(chain.rpc, chain.market)
    actions.set_prices(chain.rpc, chain.market, {s: p * 80 // 100 for s, p in prices.items() if s in ("WETH", "WBTC")})
    data = actions.account_data(chain.rpc, chain.market.pool, chain.users)
    victim = next(u for u, d in zip(chain.users, data, strict=True) if d.total_debt_base and d.health_factor < 10**18)
    event = actions.liquidate(chain.rpc, chain.market, victim)
    during = evaluate_in_process(instance, event.block, first + 1)
    assert during.success  # Redis down is not a failed run
    meta = _meta(during)
    assert meta["redis"] == "deferred"
    lake = next((platform_env / "lake" / "liquidation_candidates").glob("*.parquet"))
    assert event.block in pl.read_parquet(lake)["block"].to_list()  # the lake does not depend on Redis

    server.ensure_running()  # back on the same socket, with the state of before the outage
    actions.mine_blocks(chain.rpc, 1)
    now = int(chain.rpc.call("eth_blockNumber"), 16)
    after = evaluate_in_process(instance, now, event.block + 1)
    meta = _meta(after)
    assert after.success and meta["redis"] == "written"
    assert meta["touched_users"] >= 1  # blocks since Redis' last state re-read: the liquidated user among them
    checks = {e.check_name: e.passed for e in after.get_asset_check_evaluations()}
    assert checks["hf_agreement"] is True
    server.stop()
