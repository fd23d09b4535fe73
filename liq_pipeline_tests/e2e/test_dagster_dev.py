"""End to end: `dagster dev` on a free port against the real devnet; the sensor launches evaluation runs as blocks
arrive; materializations and check results are read back through the GraphQL API the UI uses."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest
import requests

from liq_pipeline.cache.server import EmbeddedRedis
from liq_pipeline.config import settings_fields
from liq_pipeline.devnet import actions, lifecycle
from liq_pipeline.devnet.rpc import Rpc
from liq_pipeline.supervisor import Child, Supervisor

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    answer = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    answer.raise_for_status()
    body = answer.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


RUNS = """query($job: String!) { runsOrError(filter: {pipelineName: $job}) {
  ... on Runs { results { runId status tags { key value } } } } }"""
MATERIALIZATIONS = """query { assetOrError(assetKey: {path: ["liquidation_candidates"]}) {
  ... on Asset { assetMaterializations(limit: 10) { partition runId
    metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }"""
CHECKS = """query($name: String!) { assetCheckExecutions(assetKey: {path: ["liquidation_candidates"]},
  checkName: $name, limit: 10) { runId status evaluation { success severity } } }"""


@pytest.fixture
def platform(tmp_path_factory):
    data = tmp_path_factory.mktemp("e2e")
    devnet = lifecycle.up(data, borrowers=200, seed=5)
    redis = EmbeddedRedis(data / "redis")
    port = _free_port()
    home = data / "dagster"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    rpc = Rpc(devnet.node.url)
    env = {k: v for k, v in os.environ.items() if k not in settings_fields()}
    env.update(
        RPC_URL=devnet.node.url,
        AAVE_ADDRESSES_PROVIDER=devnet.market.addresses_provider,
        DATA_DIR=str(data),
        DAGSTER_HOME=str(home),
        REDIS_URL=redis.ensure_running().url,
        STATE_HISTORY_FROM_BLOCK=str(int(rpc.call("eth_blockNumber"), 16)),
        LAKE_RANGE_BLOCKS="100",
    )
    supervisor = Supervisor(say=lambda _m: None)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(f"{url}/server_info", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        dagster = str(Path(sys.executable).parent / "dagster")
        supervisor.start(
            Child("dagster", [dagster, "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(ROOT / "workspace.yaml")],
                  ready=ready, ready_timeout=180, env=env, log_path=data / "dagster.log")
        )  # fmt: skip
        yield url, rpc, devnet
    finally:
        supervisor.stop_all()
        rpc.close()
        lifecycle.down(data)
        redis.stop()


def test_sensor_launches_evaluations_visible_through_graphql(platform):
    url, rpc, devnet = platform
    prices = actions.oracle_prices(rpc, devnet.market)
    actions.set_prices(rpc, devnet.market, {s: p * 88 // 100 for s, p in prices.items() if s in ("WETH", "WBTC")})
    deadline = time.monotonic() + 240
    succeeded: list[dict] = []
    while time.monotonic() < deadline and len(succeeded) < 2:
        actions.mine_blocks(rpc, 1)  # a block every ~2 s, like Base
        time.sleep(2)
        runs = _graphql(url, RUNS, {"job": "predictive_evaluation"})["runsOrError"]["results"]
        succeeded = [r for r in runs if r["status"] == "SUCCESS"]
        assert not [r for r in runs if r["status"] == "FAILURE"], runs
    assert len(succeeded) >= 2, "the sensor launched fewer than two successful evaluation runs in 4 minutes"
    blocks = {tag["value"] for r in succeeded for tag in r["tags"] if tag["key"] == "liq/block"}
    assert len(blocks) == len(succeeded)  # one run per block, never twice the same

    materializations = _graphql(url, MATERIALIZATIONS)["assetOrError"]["assetMaterializations"]
    assert materializations and all(m["partition"] for m in materializations)
    entries = {e["label"]: e.get("intValue") for e in materializations[0]["metadataEntries"]}
    assert entries["users"] >= 200 and entries["block"] > 0

    for name in ("hf_agreement", "latency_p95"):
        executions = _graphql(url, CHECKS, {"name": name})["assetCheckExecutions"]
        assert executions, name
        assert executions[0]["evaluation"]["success"] is True, (name, executions[0])
