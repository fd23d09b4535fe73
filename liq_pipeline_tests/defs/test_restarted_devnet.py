"""A restarted devnet is a new chain under the same block numbers: the new-block sensor notices (block hash at its
cursor), the lake and Redis forget the old chain's later blocks, and the new chain's blocks are evaluated from the
chain, with run keys of their own.

The old chain and the new one are made the way a restart makes them: evaluate a few blocks, go back to the block
the devnet was loaded at (evm_revert), then make other blocks there.
"""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from liq_pipeline.cache import open_market_cache
from liq_pipeline.cache.candidates import candidates_block
from liq_pipeline.cache.positions import get_positions
from liq_pipeline.config import load_settings
from liq_pipeline.defs.partitions import BLOCK_RANGES
from liq_pipeline.defs.predictive.assets import liquidation_candidates
from liq_pipeline.defs.predictive.sensors import new_block_sensor
from liq_pipeline.defs.resources import RESOURCES
from liq_pipeline.devnet import actions
from liq_pipeline.evaluation.rewind import rewind_lake
from liq_pipeline.evaluation.ticks import Cursor
from liq_pipeline.lake.datasets import liquidation_candidates as candidates_dataset
from liq_pipeline.lake.datasets import pool_events, watcher_blocks
from liq_pipeline.lake.open import lake_at, open_lake
from liq_pipeline.lake.partitions import BlockRange

pytestmark = pytest.mark.integration


def _head(chain) -> int:
    return int(chain.rpc.call("eth_blockNumber"), 16)


def _hash(chain, block: int) -> str:
    return chain.rpc.call("eth_getBlockByNumber", hex(block), False)["hash"]


def _tick(instance, cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=RESOURCES) as context:
        result = new_block_sensor(context)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(BLOCK_RANGES, list(request.partition_keys))
    return result


def _launch(instance, request: dg.RunRequest):
    """The run the sensor asked for, executed in-process as the daemon would launch it."""
    result = dg.materialize(
        [liquidation_candidates],
        partition_key=request.partition_key,
        instance=instance,
        resources=RESOURCES,
        run_config=request.run_config,
        tags=request.tags,
    )
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["hf_agreement"] is True
    return result.asset_materializations_for_node("liquidation_candidates")[0].metadata


def _lake_blocks(settings) -> set[int]:
    return set(open_lake(settings).scan(candidates_dataset.NAME).collect()["block"].to_list())


def _victim_row(cache, victim: str) -> pl.DataFrame:
    frame = get_positions(cache.cache).frame
    return frame.filter(pl.col("user") == victim)


@pytest.mark.parametrize("new_height", ["below_the_old_cursor", "past_the_old_cursor"])
def test_a_restarted_devnet_is_evaluated_as_a_new_chain(chain, platform_env, instance, capfd, new_height):
    settings = load_settings()
    loaded_at = _head(chain)  # STATE_HISTORY_FROM_BLOCK: the block the devnet was loaded at
    loaded_hash = _hash(chain, loaded_at)
    restart = chain.rpc.call("evm_snapshot")
    cache = open_market_cache(settings, 31337, chain.market.pool)

    # the old chain: a price shock, one block evaluated; a liquidation, one more block evaluated
    prices = actions.oracle_prices(chain.rpc, chain.market)
    actions.set_prices(chain.rpc, chain.market, {s: p * 75 // 100 for s, p in prices.items() if s in ("WETH", "WBTC")})
    actions.mine_blocks(chain.rpc, 1)
    first = _tick(instance, None)
    [request] = first.run_requests
    first_block = int(request.tags["liq/block"])
    _launch(instance, request)
    data = actions.account_data(chain.rpc, chain.market.pool, chain.users)
    victim = next(u for u, d in zip(chain.users, data, strict=True) if d.total_debt_base and d.health_factor < 10**18)
    before_liquidation = _victim_row(cache, victim)
    actions.liquidate(chain.rpc, chain.market, victim)
    actions.mine_blocks(chain.rpc, 1)
    second = _tick(instance, first.cursor)
    [request] = second.run_requests
    old_cursor_block = int(request.tags["liq/block"])
    _launch(instance, request)
    assert not _victim_row(cache, victim).equals(before_liquidation)  # the old chain's state differs
    old_keys = {first.run_requests[0].run_key, second.run_requests[0].run_key}
    assert get_positions(cache.cache).block == old_cursor_block and _lake_blocks(settings) == {
        first_block,
        old_cursor_block,
    }

    # the restart: the devnet again at the block it was loaded at, other blocks from there (another price move)
    assert chain.rpc.call("evm_revert", restart)
    actions.set_prices(chain.rpc, chain.market, {s: p * 80 // 100 for s, p in prices.items() if s in ("WETH", "WBTC")})
    new_head = first_block if new_height == "below_the_old_cursor" else old_cursor_block + 2
    actions.mine_blocks(chain.rpc, new_head - _head(chain))
    assert _head(chain) == new_head and _hash(chain, loaded_at) == loaded_hash  # the history both chains hold

    capfd.readouterr()
    third = _tick(instance, second.cursor)
    noticed = [line for line in capfd.readouterr().err.splitlines() if "new chain" in line]  # the sensor's log
    assert len(noticed) == 1 and f"back to block {loaded_at}, the last block both chains hold" in noticed[0]
    [request] = third.run_requests
    assert int(request.tags["liq/block"]) == new_head and request.tags["liq/from_block"] == str(loaded_at + 1)
    assert request.run_key not in old_keys and request.run_key == f"evaluate-{new_head}-{_hash(chain, new_head)[2:10]}"
    assert Cursor.decode(third.cursor).hash == _hash(chain, new_head)
    # nothing of the old chain is left to resume from or to read
    assert get_positions(cache.cache) is None
    assert _lake_blocks(settings) == set()

    metadata = _launch(instance, request)
    assert metadata["bootstrapped"].value is True and metadata["block"].value == new_head
    assert _victim_row(cache, victim).equals(before_liquidation)  # the liquidation happened on the old chain only
    assert candidates_block(cache.cache) == new_head  # the old chain's later block no longer blocks the writes
    assert _lake_blocks(settings) == {new_head}

    # the next tick is an ordinary one on the new chain
    actions.mine_blocks(chain.rpc, 1)
    capfd.readouterr()
    fourth = _tick(instance, third.cursor)
    assert [r.tags["liq/from_block"] for r in fourth.run_requests] == [str(new_head + 1)]
    assert "new chain" not in capfd.readouterr().err


def _candidate_rows(blocks: list[int]) -> pl.DataFrame:
    schema = candidates_dataset.SCHEMA
    rows = {c: [None] * len(blocks) for c in schema}
    rows |= {
        "block": blocks,
        "user": [f"0x{i:040x}" for i in range(len(blocks))],
        "scenario": ["baseline"] * len(blocks),
    }
    return pl.DataFrame(rows, schema=schema)


def test_the_lake_forgets_every_block_past_the_fork(tmp_path):
    lake = lake_at(tmp_path, 100)
    for start in (0, 100, 200):
        lake.write(candidates_dataset.NAME, BlockRange(start, start + 99), _candidate_rows([start + 5, start + 50]))
        lake.write(pool_events.NAME, BlockRange(start, start + 99), pool_events.SPEC.empty())
    lake.write(watcher_blocks.NAME, BlockRange(100, 199), watcher_blocks.SPEC.empty())

    trimmed, deleted = rewind_lake(lake, 120)

    assert trimmed == ["liquidation_candidates 000000000100-000000000199"]
    assert sorted(deleted) == [
        "liquidation_candidates 000000000200-000000000299",
        "pool_events 000000000100-000000000199",  # a range is whole or absent: rebuilt once final
        "pool_events 000000000200-000000000299",
    ]
    assert sorted(lake.scan(candidates_dataset.NAME).collect()["block"].to_list()) == [5, 50, 105]
    assert lake.ranges(pool_events.NAME) == [BlockRange(0, 99)]
    assert lake.ranges(watcher_blocks.NAME) == [BlockRange(100, 199)]  # the watcher's own records stay
    assert rewind_lake(lake, 120) == ([], [])  # nothing more to forget
