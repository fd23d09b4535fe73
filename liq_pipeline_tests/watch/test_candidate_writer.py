"""The watcher's incremental candidate writes against a real Redis: the live set equals each block's set."""

from __future__ import annotations

import polars as pl
import pytest

from liq_pipeline.cache import open_market_cache
from liq_pipeline.cache.server import EmbeddedRedis
from liq_pipeline.config import load_settings
from liq_pipeline.risk.engine import CANDIDATE_SCHEMA
from liq_pipeline.watch.candidates import CandidateWriter


def _frame(block: int, rows: list[tuple[str, str, float, bool]]) -> pl.DataFrame:
    base = {name: [] for name in CANDIDATE_SCHEMA}
    for user, scenario, eta, liquidatable in rows:
        values = {name: None for name in CANDIDATE_SCHEMA}
        values.update(user=user, scenario=scenario, block=block, eta_sec=eta, liquidatable_now=liquidatable,
                      hf_current=1.01, hf_scenario=1.0, hf_projected=0.99)  # fmt: skip
        for name in CANDIDATE_SCHEMA:
            base[name].append(values[name])
    return pl.DataFrame(base, schema=CANDIDATE_SCHEMA)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    server = EmbeddedRedis(tmp_path / "r")
    monkeypatch.setenv("REDIS_URL", server.ensure_running().url)
    yield open_market_cache(load_settings(), 31337, "0x" + "12" * 20)
    server.stop()


def _live(cache) -> dict[str, float]:
    frame = cache.read_candidates()
    return {f"{u}:{s}": e for u, s, e in frame.select("user", "scenario", "eta_sec").iter_rows()}


def test_incremental_writes_keep_the_live_set_exact(cache):
    writer = CandidateWriter(cache)
    writer.write(10, _frame(10, [("0xa", "baseline", 0.0, True), ("0xb", "adverse", 50.0, False),
                                 ("0xc", "extreme", 120.0, False)]))  # fmt: skip
    assert _live(cache) == {"0xa:baseline": 0.0, "0xb:adverse": 50.0, "0xc:extreme": 120.0}

    cache.cache.stats.reset()
    # 0xa unchanged, 0xb moved by 0.4 s (below the resolution), 0xc moved 10 s, 0xd new, nobody removed
    writer.write(11, _frame(11, [("0xa", "baseline", 0.0, True), ("0xb", "adverse", 49.6, False),
                                 ("0xc", "extreme", 110.0, False), ("0xd", "baseline", 5.0, False)]))  # fmt: skip
    live = _live(cache)
    assert live == {"0xa:baseline": 0.0, "0xb:adverse": 50.0, "0xc:extreme": 110.0, "0xd:baseline": 5.0}

    # 0xb leaves the set, 0xa is no longer liquidatable now (rewritten although its ETA stayed)
    writer.write(12, _frame(12, [("0xa", "baseline", 0.0, False), ("0xc", "extreme", 110.0, False),
                                 ("0xd", "baseline", 5.0, False)]))  # fmt: skip
    frame = cache.read_candidates()
    assert set(frame["user"] + ":" + frame["scenario"]) == {"0xa:baseline", "0xc:extreme", "0xd:baseline"}
    assert frame.filter(pl.col("user") == "0xa")["liquidatable_now"].to_list() == [False]


def test_an_older_block_never_overwrites_a_newer_one(cache):
    writer = CandidateWriter(cache)
    writer.write(20, _frame(20, [("0xa", "baseline", 0.0, True)]))
    assert writer.write(19, _frame(19, [("0xz", "baseline", 0.0, True)])) == "skipped"
    assert set(_live(cache)) == {"0xa:baseline"}
