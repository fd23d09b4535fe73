"""End to end: `dagster dev` on a free port against the real devnet; the sensor launches evaluation runs as blocks
arrive; materializations and check results are read back through the GraphQL API the UI uses."""

from __future__ import annotations

import time

import pytest
import requests

from liq_pipeline.devnet import actions

pytestmark = [pytest.mark.slow, pytest.mark.integration]


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
  checkName: $name, limit: 10) { runId status evaluation { success severity
    metadataEntries { label ... on FloatMetadataEntry { floatValue } ... on IntMetadataEntry { intValue } } } } }"""


def test_sensor_launches_evaluations_visible_through_graphql(platform):
    url, rpc, devnet = platform.url, platform.rpc, platform.devnet  # the session's platform (conftest.py)
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

    ran = {r["runId"] for r in succeeded}
    judged = {}
    for name in ("hf_agreement", "latency_p95"):
        executions = _graphql(url, CHECKS, {"name": name})["assetCheckExecutions"]
        # the sensor goes on launching runs: the newest execution may belong to a run still going (no evaluation
        # yet, seen on CI): the newest of the runs that succeeded is judged
        finished = [e for e in executions if e["runId"] in ran]
        assert finished, (name, executions)
        judged[name] = finished[0]["evaluation"]
    # exactness is a fact of the chain: no flip, whatever the machine's load
    assert judged["hf_agreement"]["success"] is True and judged["hf_agreement"]["severity"] == "ERROR", judged
    # speed is the machine's (a loaded CI machine may miss the KPI): the check must report its figures and a verdict
    # that follows from them, as a WARN; its speed is measured by the benchmarks, never asserted here
    latency = judged["latency_p95"]
    figures = {e["label"]: e.get("floatValue", e.get("intValue")) for e in latency["metadataEntries"]}
    assert latency["severity"] == "WARN" and figures["p95_ms"] > 0, latency
    assert latency["success"] is (figures["p95_ms"] <= figures["limit_ms"]), latency
