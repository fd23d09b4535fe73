"""The order `liq backfill --parallel` starts ranges in (commands/backfill.py `_Plan`): in block order, a range
only once every earlier range has its pool_events or has ended (its borrower_snapshots reads them), and the ranges
of a dead worker run again."""

from __future__ import annotations

from collections import OrderedDict

import pytest

from liq_pipeline.commands.backfill import _Plan

KEYS = ["000000000000-000000000009", "000000000010-000000000019", "000000000020-000000000029"]
A, B, C = KEYS


def test_a_range_starts_once_every_earlier_range_has_its_pool_events():
    plan = _Plan(list(reversed(KEYS)))  # in block order whatever the order given
    assert plan.next_range() == A
    assert plan.next_range() is None and plan.waiting()  # B waits for A's pool_events
    plan.events_done({A})
    assert plan.next_range() == B
    plan.events_done({C})  # a range's own pool_events do not let the next one start before the earlier ones'
    assert plan.next_range() is None
    plan.events_done({B})
    assert plan.next_range() == C
    assert plan.next_range() is None and not plan.waiting()
    for key in KEYS:
        plan.record(key, None)
    assert plan.finished()
    assert plan.outcomes() == dict.fromkeys(KEYS)


def test_an_ended_range_lets_the_next_start_even_without_its_pool_events():
    """As in a sequential backfill: B runs (its borrower_snapshots then says, in one line, what is missing)."""
    plan = _Plan(KEYS)
    assert plan.next_range() == A
    plan.record(A, "range A: pool_events: the node said no")
    assert plan.next_range() == B
    assert not plan.finished()
    plan.record(B, "range B: borrower_snapshots: cannot know the borrowers before block 10")
    plan.events_done({B})
    assert plan.next_range() == C
    plan.record(C, None)
    assert plan.finished()
    assert plan.outcomes()[A] == "range A: pool_events: the node said no"
    assert plan.outcomes()[C] is None


def test_the_ranges_of_a_dead_worker_run_again_in_order():
    plan = _Plan(KEYS)
    first = plan.next_range()
    plan.events_done({A})
    second = plan.next_range()
    plan.retry(second)
    plan.retry(first)
    assert plan.retrying() == [B, A]
    plan.requeue()
    assert not plan.finished()
    assert [plan.next_range(), plan.next_range()] == [A, B]  # A's pool_events were seen: B need not wait again


# --- the resources of the backfill's runs (commands/backfill.py: BackfillChain; config.current_settings) ---

PROVIDER = "0x" + "11" * 20
OTHER_PROVIDER = "0x" + "22" * 20


@pytest.fixture
def backfill_env(monkeypatch, tmp_path):
    from liq_pipeline import config
    from liq_pipeline.commands import backfill

    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    monkeypatch.setenv("RPC_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AAVE_ADDRESSES_PROVIDER", PROVIDER)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(config, "_current", None)
    monkeypatch.setattr(backfill, "_MARKETS", OrderedDict())
    return tmp_path


def test_the_settings_are_parsed_again_only_when_what_they_read_changed(backfill_env, monkeypatch):
    from liq_pipeline.config import current_settings
    from liq_pipeline.defs.resources import ChainResource, LakeResource

    first = current_settings()
    assert current_settings() is first
    assert ChainResource().settings() is first  # every run's resources, not only the backfill's
    monkeypatch.setenv("LAKE_RANGE_BLOCKS", "20")
    assert current_settings().lake_range_blocks == 20
    assert LakeResource().lake().range_size == 20
    (backfill_env / ".env").write_text("LAKE_RANGE_BLOCKS=30\nCONFIRMATIONS=3\n")
    monkeypatch.delenv("LAKE_RANGE_BLOCKS")
    assert (current_settings().lake_range_blocks, current_settings().confirmations) == (30, 3)
    (backfill_env / ".env").write_text("LAKE_RANGE_BLOCKS=40\nCONFIRMATIONS=3\n")  # same size, maybe the same mtime
    assert current_settings().lake_range_blocks == 40


def test_a_market_is_discovered_once_per_node_provider_and_block(backfill_env, monkeypatch):
    from liq_pipeline.commands.backfill import BackfillChain
    from liq_pipeline.defs.resources import ChainResource

    discovered: list[tuple[str, int]] = []

    def discover(self, rpc, block):
        discovered.append((self.settings().aave_addresses_provider.lower(), block))
        return object(), object()

    monkeypatch.setattr(ChainResource, "market", discover)
    chain = BackfillChain()
    with chain.client() as rpc:
        first = chain.market(rpc, 99)
        assert chain.market(rpc, 99) is first
        assert chain.market(rpc, 100) is not first
        monkeypatch.setenv("AAVE_ADDRESSES_PROVIDER", OTHER_PROVIDER)
        chain.market(rpc, 99)
    assert discovered == [(PROVIDER, 99), (PROVIDER, 100), (OTHER_PROVIDER, 99)]


def test_the_backfill_reads_through_the_settings_multicall(backfill_env, monkeypatch):
    from liq_pipeline.chain.multicall import MULTICALL3, AggregatingRpcClient
    from liq_pipeline.commands.backfill import BACKFILL_RESOURCES

    with BACKFILL_RESOURCES["chain"].client() as rpc:
        assert isinstance(rpc, AggregatingRpcClient) and rpc.multicall == MULTICALL3
    monkeypatch.setenv("MULTICALL_ADDRESS", "")  # plain batches, as everywhere else
    with BACKFILL_RESOURCES["chain"].client() as rpc:
        assert rpc.multicall is None
