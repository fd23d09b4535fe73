"""`liq backfill` as a new user runs it (issue #14): on the devnet loaded from its state cache, from block 0. The
clamp to the first block with state is said once, every range is materialized, and a range that fails says why in
one line, without Dagster's log lines."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager

from liq_pipeline.commands.backfill import backfill_instance, failure_reason
from liq_pipeline.devnet import actions
from liq_pipeline_tests.commands.clirun import lines, liq

SIZE = 10


def _first_with_state(chain) -> int:
    """The devnet's load block, found block by block (not by the code under test)."""
    head = int(chain.rpc.call("eth_blockNumber"), 16)
    for block in range(head + 1):
        try:
            chain.rpc.call("eth_getCode", chain.market.addresses_provider, hex(block))
            return block
        except Exception:
            continue
    raise AssertionError("no state at the head")


def _noise(stderr: str) -> list[str]:
    return [line for line in lines(stderr) if "DEBUG" in line or "Execution of step" in line or "dagster" in line]


@pytest.mark.integration
def test_backfill_from_block_0_on_a_devnet_loaded_from_its_state_cache(devnet_home, chain, cli_env):
    state_from = _first_with_state(chain)
    assert state_from > 0, "a devnet loaded from a state dump has no state before its load block"
    actions.mine_blocks(chain.rpc, 3 * SIZE)  # `liq devnet simulate` stands for this: history after the load
    last = 3 * SIZE - 1
    settings = {"LAKE_RANGE_BLOCKS": str(SIZE), "CONFIRMATIONS": "0"}
    result = liq(
        "backfill", "--from-block", "0", "--to-block", str(last), env=cli_env, cwd=devnet_home.parent, **settings
    )
    assert result.returncode == 0, result.stderr
    clamp = (
        f"blocks 0-{state_from - 1} have no state on this node (first block with state: {state_from}): "
        f"backfilling from {state_from}"
    )
    assert [line for line in lines(result.stderr) if "have no state" in line] == [
        f"{clamp} (before it: logs only, pool_events)"
    ]
    assert not _noise(result.stderr), result.stderr
    assert lines(result.stdout) == ["3 of 3 ranges materialized"]
    for dataset in ("pool_events", "reserve_indices", "price_histories", "borrower_snapshots"):
        assert len(list((devnet_home / "lake" / dataset).glob("*.parquet"))) == 3, dataset
    home = devnet_home / "dagster"  # the runs are recorded there; their compute logs are not (backfill_instance)
    assert list(home.rglob("runs.db")), list(home.rglob("*"))
    assert not [p for p in home.rglob("*") if p.suffix in (".out", ".err", ".complete")], list(home.rglob("*"))


def test_backfill_runs_keep_no_compute_logs_unless_log_level_is_debug(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    assert isinstance(backfill_instance().compute_log_manager, NoOpComputeLogManager)
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    assert isinstance(backfill_instance().compute_log_manager, LocalComputeLogManager)


@pytest.mark.integration
def test_a_failing_range_says_why_in_one_line(devnet_home, chain, cli_env):
    actions.mine_blocks(chain.rpc, 3 * SIZE)
    settings = {"LAKE_RANGE_BLOCKS": str(SIZE), "CONFIRMATIONS": "0"}
    # range 20-29 alone: its borrower_snapshots needs the pool_events of 0-9 and 10-19, never built
    result = liq("backfill", "--from-block", "20", "--to-block", "29", env=cli_env, cwd=devnet_home.parent, **settings)
    assert result.returncode == 1
    failed = [line for line in lines(result.stderr) if line.startswith("failed:")]
    assert failed == [
        "failed: range 000000000020-000000000029: borrower_snapshots: cannot know the borrowers before block 20: "
        "pool_events: 2 range(s) of [0, 19] not materialized: 000000000000-000000000009, 000000000010-000000000019 "
        "(backfill from block 0: a snapshot needs the pool_events of every earlier range)"
    ]
    assert not _noise(result.stderr), result.stderr
    assert lines(result.stdout) == ["0 of 1 ranges materialized"]


def test_an_unexpected_error_in_a_step_is_its_own_line():
    """Not a dg.Failure: the innermost error of the user code, on one line, never Dagster's wrapper."""
    partitions = dg.StaticPartitionsDefinition(["000000000000-000000000009"])

    @dg.asset(partitions_def=partitions)
    def sketchy() -> None:
        raise RuntimeError("the node said:\n  nothing useful")

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [sketchy], partition_key="000000000000-000000000009", instance=instance, raise_on_error=False
        )
    assert failure_reason(result, "000000000000-000000000009") == (
        "range 000000000000-000000000009: sketchy: RuntimeError: the node said: nothing useful"
    )
