"""The watcher's incremental candidate writes against a real Redis: the live set equals each block's set."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from liq_pipeline.cache import open_market_cache
from liq_pipeline.cache.server import EmbeddedRedis
from liq_pipeline.config import load_settings
from liq_pipeline.risk.book import build_book
from liq_pipeline.risk.engine import evaluate
from liq_pipeline.risk.evaluation import Evaluation
from liq_pipeline.risk.market import positions_frame
from liq_pipeline.risk.params import EngineParams
from liq_pipeline.risk.scenarios import default_specs
from liq_pipeline.watch.candidates import CandidateWriter
from liq_pipeline_tests.risk.factories import both, market, reserve, user

WETH = reserve(0, "WETH", 18, 2_000 * 10**8, 8000)
USDC = reserve(1, "USDC", 6, 10**8, 7800, stable=True)
MARKET = market([WETH, USDC])
USERS = ["0xa", "0xb", "0xc", "0xd"]


def _positions(users: list[str]) -> pl.DataFrame:
    return positions_frame([user(u, {0: both(10**18, 0), 1: both(0, 1_000 * 10**6)}) for u in users], (0, 1))


def _base(users: list[str] = USERS) -> Evaluation:
    book = build_book(_positions(users), MARKET)
    return evaluate(book, MARKET, EngineParams(default_specs(["baseline", "adverse", "extreme"])))


def _frame(block: int, rows: list[tuple[str, str, float, bool]], base: Evaluation | None = None) -> Evaluation:
    """An evaluation of block `block` whose candidates are exactly `rows` (user, scenario, eta, liquidatable)."""
    base = base or _BASE
    users = base.book.positions["user"].to_list()
    eta = {name: np.full(len(users), np.inf) for name in base.eta}
    hf_current = np.full(len(users), 1.5)
    for address, scenario, seconds, liquidatable in rows:
        eta[scenario][users.index(address)] = seconds
        if liquidatable:
            hf_current[users.index(address)] = 0.9
    return dataclasses.replace(base, block=block, eta=eta, hf_current=hf_current)


_BASE = _base()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    server = EmbeddedRedis(tmp_path / "r")
    monkeypatch.setenv("REDIS_URL", server.ensure_running().url)
    yield open_market_cache(load_settings(), 31337, "0x" + "12" * 20)
    server.stop()


def _live(cache) -> dict[str, float]:
    """The live ZSET: member -> score (the ETA). Every member has details (read_candidates drops none)."""
    scores = cache.cache.client.zrange(cache.cache.keys.candidates_zset, 0, -1, withscores=True)
    assert cache.read_candidates().height == len(scores)
    return {member.decode(): score for member, score in scores}


def _details(cache) -> dict[str, tuple]:
    """Member -> its details as written (block, liquidatable now, ETA)."""
    frame = cache.read_candidates()
    keys = (frame["user"] + ":" + frame["scenario"]).to_list()
    return dict(zip(keys, frame.select("block", "liquidatable_now", "eta_sec").rows(), strict=True))


def _details_block(cache, member: str) -> int:
    frame = cache.read_candidates()
    return frame.filter(frame["user"] + ":" + frame["scenario"] == member)["block"].item()


def test_incremental_writes_keep_the_live_set_exact(cache):
    writer = CandidateWriter(cache)
    writer.write(
        _frame(10, [("0xa", "baseline", 0.0, True), ("0xb", "adverse", 50.0, False), ("0xc", "extreme", 120.0, False)])
    )
    assert _live(cache) == {"0xa:baseline": 0.0, "0xb:adverse": 50.0, "0xc:extreme": 120.0}

    cache.cache.stats.reset()
    # 0xa unchanged, 0xb moved by 0.4 s (below 1 s), 0xc by 10 s (below 10 % of 120 s), 0xd new, none removed
    steady = [("0xa", "baseline", 0.0, True), ("0xb", "adverse", 49.6, False)]
    writer.write(_frame(11, [*steady, ("0xc", "extreme", 110.0, False), ("0xd", "baseline", 5.0, False)]))
    live = _live(cache)
    assert live == {"0xa:baseline": 0.0, "0xb:adverse": 50.0, "0xc:extreme": 120.0, "0xd:baseline": 5.0}

    # 0xc moved 15 s (over 10 %), 0xd 2 s (over 1 s: near-term ETAs keep the fine resolution)
    writer.write(_frame(12, [*steady, ("0xc", "extreme", 105.0, False), ("0xd", "baseline", 3.0, False)]))
    assert _live(cache) == {"0xa:baseline": 0.0, "0xb:adverse": 50.0, "0xc:extreme": 105.0, "0xd:baseline": 3.0}
    assert _details_block(cache, "0xc:extreme") == 10  # a moved ETA moves the score; the details stay as written

    # 0xb leaves the set, 0xa is no longer liquidatable now (rewritten although its ETA stayed)
    writer.write(
        _frame(13, [("0xa", "baseline", 0.0, False), ("0xc", "extreme", 105.0, False), ("0xd", "baseline", 3.0, False)])
    )
    frame = cache.read_candidates()
    assert set(frame["user"] + ":" + frame["scenario"]) == {"0xa:baseline", "0xc:extreme", "0xd:baseline"}
    assert frame.filter(pl.col("user") == "0xa")["liquidatable_now"].to_list() == [False]


def test_an_older_block_never_overwrites_a_newer_one(cache):
    writer = CandidateWriter(cache)
    writer.write(_frame(20, [("0xa", "baseline", 0.0, True)]))
    assert writer.write(_frame(19, [("0xd", "baseline", 0.0, True)])) == "skipped"
    assert set(_live(cache)) == {"0xa:baseline"}


def test_users_new_to_the_book_are_written_and_a_new_layout_rewrites_in_full(cache):
    base = _base(["0xa", "0xb"])
    writer = CandidateWriter(cache)
    writer.write(_frame(30, [("0xa", "baseline", 3.0, False)], base))
    base.book.update(_positions(["0xc"]), MARKET)  # appended in place: same layout, one more row
    grown = evaluate(base.book, MARKET, base.params)
    writer.write(_frame(31, [("0xa", "baseline", 3.0, False), ("0xc", "adverse", 7.0, False)], grown))
    assert _live(cache) == {"0xa:baseline": 3.0, "0xc:adverse": 7.0}

    cache.cache.client.delete(cache.cache.keys.candidates_zset)  # lost behind the writer's back
    rebuilt = _base(["0xa", "0xb", "0xc"])  # a new book: rows may have moved, so the next write is whole
    writer.write(_frame(32, [("0xb", "extreme", 9.0, False)], rebuilt))
    assert _live(cache) == {"0xb:extreme": 9.0}


def test_a_stale_evaluation_refuses_to_build_rows():
    base = _base(["0xa", "0xb"])
    base.book.update(_positions(["0xb"]), MARKET)
    with pytest.raises(RuntimeError, match="stale"):
        _ = base.candidates


def test_details_are_refreshed_a_slice_per_block(cache):
    from liq_pipeline.watch.candidates import DETAILS_REFRESH_BLOCKS

    writer = CandidateWriter(cache)
    rows = [(u, "baseline", 30.0, False) for u in USERS]
    writer.write(_frame(100, rows))
    for block in range(101, 101 + DETAILS_REFRESH_BLOCKS):
        writer.write(_frame(block, rows))  # nothing changes...
    blocks = {u: _details_block(cache, f"{u}:baseline") for u in USERS}
    assert all(b > 100 for b in blocks.values())  # ...yet every member's details were rewritten once since
    assert len(set(blocks.values())) == len(USERS)  # each in its own block: a slice per block, not all at once


def test_a_carried_block_compares_only_the_rows_evaluated_anew_and_writes_the_same(cache):
    import random

    from liq_pipeline.risk.params import AssetTrend
    from liq_pipeline.risk.synthetic import sample

    market_sample = sample(2_000, seed=11, near_one_share=0.05)
    market_now = market_sample.market
    trends = {r: AssetTrend(0.0, v) for r, v in market_sample.volatility.items()}
    params = EngineParams(default_specs(["baseline", "adverse", "extreme"]))
    book = build_book(market_sample.positions, market_now)
    spare = build_book(sample(50, seed=12).positions, market_now).positions
    other = open_market_cache(load_settings(), 31337, "0x" + "34" * 20)  # same server, other keys
    narrow, wide = CandidateWriter(cache), CandidateWriter(other)
    wide._rows_to_compare = lambda _evaluation: None  # the reference: every row compared
    rng, previous, narrowed = random.Random(3), None, 0
    for step in range(40):
        if step % 6 == 4:
            users = rng.sample(book.positions["user"].to_list(), 2)
            book.update(spare.sample(2, seed=step).with_columns(pl.Series("user", users)), market_now)
        evaluation = evaluate(book, market_now, params, trends, screen=previous and previous.screen, previous=previous)
        narrowed += narrow._rows_to_compare(evaluation) is not None
        narrow.write(evaluation)
        wide.write(evaluation)
        assert _live(cache) == _live(other)
        assert _details(cache) == _details(other)
        previous = evaluation
        market_now = dataclasses.replace(market_now, block=market_now.block + 1, timestamp=market_now.timestamp + 60)
        if step == 25:  # a price move: that block is compared in full
            market_now = dataclasses.replace(
                market_now,
                reserves=tuple(
                    dataclasses.replace(r, price=r.price * 99 // 100) if not r.is_stable else r
                    for r in market_now.reserves
                ),
            )
    assert narrowed >= 25


def test_details_written_block_by_block_are_the_bytes_a_full_write_gives(cache):
    """The incremental path packs candidate columns (no frame); the full write packs the frame row by row. The
    stored details must be the same bytes: readers and bots see one format."""
    from liq_pipeline.cache.candidates import write_candidates
    from liq_pipeline.risk.synthetic import sample

    market_sample = sample(3_000, seed=5, near_one_share=0.1)
    book = build_book(market_sample.positions, market_sample.market)
    params = EngineParams(default_specs(["baseline", "adverse", "extreme"]))
    first = evaluate(book, market_sample.market, params)
    writer = CandidateWriter(cache)
    nobody = {name: np.full(book.height, np.inf) for name in first.eta}
    writer.write(dataclasses.replace(first, eta=nobody, hf_current=np.full(book.height, 2.0)))  # an empty set
    writer.write(first)  # every member new: all go through the incremental path with details
    assert writer.last_counts["detailed"] == first.candidates.height > 100
    other = open_market_cache(load_settings(), 31337, "0x" + "56" * 20)
    assert write_candidates(other.cache, first.block + 1, first.candidates)
    stored = cache.cache.client.hgetall(cache.cache.keys.candidates_details)
    reference = other.cache.client.hgetall(other.cache.keys.candidates_details)
    assert stored == reference
