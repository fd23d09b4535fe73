"""`liq status`: its exit code is the platform's health, Redis is reachable or not (never null), a wrong provider
address is told apart from an unreachable node, and without --json it prints lines for people. A test's `liq status`
runs are independent (status reads, never writes): they go at once (`liq_at_once`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from liq_pipeline.cache import CacheOptions, EmbeddedRedis, MarketCache, MarketKeys, connect, set_kpis
from liq_pipeline_tests.commands.clirun import lines, liq, liq_at_once


@pytest.fixture
def platform(chain, tmp_path: Path, cli_env) -> Iterator[dict[str, str]]:
    """The session devnet as RPC_URL, the embedded Redis of a fresh DATA_DIR running (started as `liq redis start`
    starts it, without a process of its own: that command is tested in test_redis_command.py)."""
    env = {
        **cli_env,
        "RPC_URL": chain.node.url,
        "AAVE_ADDRESSES_PROVIDER": chain.market.addresses_provider,
        "AAVE_PROTOCOL_VERSION": chain.market.protocol_version,  # the default is Base's 3.7
        "DATA_DIR": str(tmp_path / "d"),  # short: the socket path must fit in ~100 bytes
    }
    redis = EmbeddedRedis(tmp_path / "d" / "redis")
    redis.ensure_running()
    try:
        yield env
    finally:
        redis.stop()


def _status(env: dict[str, str], cwd: Path, *extra: str):
    result = liq("status", *extra, env=env, cwd=cwd)
    return result, (json.loads(result.stdout) if "--json" in extra else None)


def _statuses(runs: list[tuple[dict[str, str], tuple[str, ...]]], cwd: Path):
    """`liq status <extra>` with each (env, extra), all at once: what `_status` gives for each, in order."""
    results = liq_at_once([["status", *extra] for _, extra in runs], env={}, cwd=cwd, settings=[e for e, _ in runs])
    return [
        (result, json.loads(result.stdout) if "--json" in extra else None)
        for (_, extra), result in zip(runs, results, strict=True)
    ]


@pytest.mark.integration
def test_healthy_is_exit_0_and_a_wrong_provider_is_not_an_unreachable_node(platform, chain, tmp_path):
    wrong = {**platform, "AAVE_ADDRESSES_PROVIDER": "0x000000000000000000000000000000000000dEaD"}
    runs = [(platform, ("--json",)), (wrong, ("--json",))]
    (result, report), (wrong_result, wrong_report) = _statuses(runs, tmp_path)
    # healthy
    assert result.returncode == 0, result.stdout
    assert report["healthy"] is True and report["problems"] == []
    assert report["redis"]["reachable"] is True and report["redis"]["embedded"] is True
    assert report["chain"]["market"]["found"] is True
    # a wrong provider is not an unreachable node
    assert wrong_result.returncode == 1, ("wrong provider", wrong_result.stdout)
    assert wrong_report["chain"]["reachable"] is True and wrong_report["chain"]["latest_block"] > 0, wrong_report
    market = wrong_report["chain"]["market"]
    assert market["found"] is False and "no contract at AAVE_ADDRESSES_PROVIDER" in market["error"], market
    assert wrong_report["redis"]["reachable"] is True, wrong_report


@pytest.mark.integration
def test_an_evaluation_far_behind_is_exit_1(platform, chain, tmp_path):
    head = int(chain.rpc.call("eth_blockNumber"), 16)
    client = connect(EmbeddedRedis(Path(platform["DATA_DIR"]) / "redis").url())
    set_kpis(
        MarketCache(client, MarketKeys.for_market(31337, chain.market.pool), CacheOptions()),
        {"last_evaluated_block": head - 100},
    )
    client.close()
    result, report = _status(platform, tmp_path, "--json")
    assert result.returncode == 1
    assert report["blocks_behind"] == 100
    assert report["problems"] == ["evaluation: 100 blocks behind the chain (more than 30)"]


def test_redis_is_reachable_or_not_never_null_and_without_json_it_prints_lines(cli_env, clean_env):
    runs = [({**cli_env, "REDIS_URL": "redis://:pw@127.0.0.1:9/0"}, ("--json",)), (cli_env, ("--json",)), (cli_env, ())]
    (result, report), (_, embedded), (text, _) = _statuses(runs, clean_env)
    # Redis is reachable or not, never null: a REDIS_URL nothing listens at...
    assert result.returncode == 1
    assert report["redis"]["reachable"] is False and report["redis"]["url"] == "redis://***@127.0.0.1:9/***"
    assert "Connection refused" in report["redis"]["error"]
    # ...and the embedded Redis, not started
    assert embedded["redis"] == {
        "reachable": False,
        "embedded": True,
        "error": "the embedded Redis of DATA_DIR=./data is not running (`liq redis start`, or `liq dev`)",
    }
    # without --json it prints lines
    assert text.returncode == 1, text.stdout
    assert not text.stdout.lstrip().startswith("{")
    shown = lines(text.stdout)
    assert shown[0].split()[:2] == ["chain", "unreachable"]
    assert any(line.split()[:2] == ["redis", "unreachable"] for line in shown)
    assert shown[-1].startswith("unhealthy: chain: RPC_URL and AAVE_ADDRESSES_PROVIDER are not set")


@pytest.mark.integration
def test_a_lake_on_an_object_store_that_does_not_answer_is_a_problem_not_a_traceback(platform, tmp_path):
    from liq_pipeline_tests.lake.moto_s3 import free_port

    env = {
        **platform,
        "LAKE_URL": "s3://liq-lake/devnet",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
    }
    (result, report), (text, _) = _statuses([(env, ("--json",)), (env, ())], tmp_path)  # each waits ~1 s: at once
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert [p for p in report["problems"] if p.startswith("lake: ")], report["problems"]
    assert "the endpoint does not answer" in report["lake_error"]
    assert "unreachable" in next(line for line in lines(text.stdout) if line.startswith("lake")), text.stdout
