"""Candidates: round trip, replacement per block, chunking, pipelining off, atomicity under a concurrent reader."""

from __future__ import annotations

import math
import threading

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from liq_pipeline.cache import candidates_block, read_candidates, write_candidates
from liq_pipeline.risk.evaluation import CANDIDATE_SCHEMA
from liq_pipeline_tests.cache.factories import candidate_frame, sorted_by_eta


def test_round_trip_keeps_every_column_and_sorts_by_eta(cache):
    frame = candidate_frame(100, list(range(1, 40)))
    assert write_candidates(cache, 100, frame) is True
    back = read_candidates(cache)
    assert back.schema == pl.Schema(CANDIDATE_SCHEMA)
    assert_frame_equal(back, sorted_by_eta(frame))
    assert candidates_block(cache) == 100
    zset = cache.client.zrange(cache.keys.candidates_zset, 0, 2, withscores=True)
    assert cache.keys.candidates_zset.endswith(":predictive:eta:zset")
    assert [score for _, score in zset] == sorted(frame["eta_sec"].to_list())[:3]


def test_a_new_block_replaces_the_set_and_drops_candidates_that_disappeared(cache):
    write_candidates(cache, 100, candidate_frame(100, [1, 2, 3, 4]))
    write_candidates(cache, 101, candidate_frame(101, [3, 4, 5]))
    back = read_candidates(cache)
    assert set(back["user"]) == {f"0x{n:040x}" for n in (3, 4, 5)}
    assert set(back["block"]) == {101}
    assert cache.client.hlen(cache.keys.candidates_details) == 6  # 3 users x 2 scenarios, none left over
    assert cache.client.keys(cache.keys.key("staging:*")) == []


def test_an_older_block_does_not_overwrite_a_newer_one(cache):
    write_candidates(cache, 105, candidate_frame(105, [1]))
    assert write_candidates(cache, 104, candidate_frame(104, [2, 3])) is False
    assert set(read_candidates(cache)["block"]) == {105}
    assert cache.client.keys(cache.keys.key("staging:*")) == []
    assert write_candidates(cache, 105, candidate_frame(105, [9])) is True  # same block: a re-evaluation


def test_an_empty_frame_clears_the_set(cache):
    write_candidates(cache, 7, candidate_frame(7, [1, 2]))
    assert write_candidates(cache, 8, pl.DataFrame(schema=CANDIDATE_SCHEMA)) is True
    assert read_candidates(cache).height == 0
    assert candidates_block(cache) == 8
    assert cache.client.exists(cache.keys.candidates_zset, cache.keys.candidates_details) == 0


def test_limit_and_max_eta(cache):
    frame = candidate_frame(3, list(range(1, 30)))
    write_candidates(cache, 3, frame)
    assert_frame_equal(read_candidates(cache, limit=5), sorted_by_eta(frame).head(5))
    soon = read_candidates(cache, max_eta=50.0)
    assert soon.height == frame.filter(pl.col("eta_sec") <= 50.0).height > 0
    assert read_candidates(cache, limit=0).height == 0


def test_unknown_eta_is_stored_last(cache):
    frame = candidate_frame(3, [1, 2]).with_columns(
        pl.when(pl.col("user") == f"0x{1:040x}").then(float("nan")).otherwise(pl.col("eta_sec")).alias("eta_sec")
    )
    write_candidates(cache, 3, frame)
    back = read_candidates(cache)
    assert back["user"][-1] == f"0x{1:040x}" and math.isnan(back["eta_sec"][-1])


@pytest.mark.parametrize("pipelining", [True, False])
def test_chunks_of_max_pipeline(make_cache, pipelining):
    cache = make_cache(max_pipeline=3, pipelining=pipelining)
    frame = candidate_frame(50, list(range(1, 6)))  # 10 candidates -> chunks of 3, 3, 3, 1
    write_candidates(cache, 50, frame)
    chunks = 4
    staging = chunks * 2 + 2  # a ZADD and an HSET per chunk, plus the two EXPIREs of the first
    if pipelining:
        assert cache.stats.round_trips == chunks + 3  # one per chunk; WATCH, HGET, MULTI..EXEC
    else:
        assert cache.stats.round_trips == staging + 1 + 5  # one per command: HGET, 2 RENAME, 2 PERSIST, HSET
    assert_frame_equal(read_candidates(cache), sorted_by_eta(frame))
    write_candidates(cache, 51, candidate_frame(51, [2]))
    assert read_candidates(cache).height == 2


def test_a_reader_never_sees_two_blocks_mixed(cache):
    sizes = {block: 50 + (block % 7) * 40 for block in range(1, 41)}
    frames = {block: candidate_frame(block, list(range(block, block + sizes[block]))) for block in sizes}
    done, problems, reads = threading.Event(), [], []

    def reader():
        while not done.is_set():
            back = read_candidates(cache)
            reads.append(back.height)
            if back.height:
                blocks = set(back["block"])
                if len(blocks) != 1 or back.height != 2 * sizes[blocks.pop()]:
                    problems.append(back.height)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for block, frame in frames.items():
            write_candidates(cache, block, frame)
    finally:
        done.set()
        thread.join()
    assert problems == []
    assert len(reads) >= 5  # the reader did run alongside the writer


def test_thousands_of_candidates_read_back_whole(cache):
    frame = candidate_frame(9, list(range(1, 1202)))  # 2402 rows: the read script's HMGET slices are 1000
    write_candidates(cache, 9, frame)
    assert_frame_equal(read_candidates(cache), sorted_by_eta(frame))
