"""Block-range partition keys: format, refusals, finished ranges, ranges covering an interval."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liq_pipeline.lake.errors import PartitionKeyError
from liq_pipeline.lake.partitions import BlockRange, finished_ranges, parse_key, range_of, ranges_covering


def test_keys_are_zero_padded_and_sort_in_block_order():
    assert range_of(12_345).key == "000000012000-000000012999"
    assert range_of(12_345, size=100).key == "000000012300-000000012399"
    keys = [range_of(b).key for b in (999_999_999, 5, 1_000, 10_000_000)]
    assert sorted(keys) == [range_of(b).key for b in (5, 1_000, 10_000_000, 999_999_999)]


@given(block=st.integers(0, 10**11), size=st.integers(1, 100_000))
def test_a_key_parses_back_to_its_range(block, size):
    block_range = range_of(block, size)
    assert block in block_range and block_range.size == size and block_range.start % size == 0
    assert parse_key(block_range.key, size) == block_range


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("abc", "not a block-range key"),
        ("5-3", "not a block-range key"),
        ("", "not a block-range key"),
        (" 000000000000-000000000999", "not a block-range key"),
        ("00000000000-000000000999", "not a block-range key"),  # 11 digits
        ("000000000000_to_000000000999", "not a block-range key"),  # a file name, not a key
        ("000000001999-000000001000", "ends before it starts"),
        ("000000000000-000000001000", "covers 1001 blocks"),  # one block too many
        ("000000000000-000000000998", "covers 999 blocks"),
        ("000000000500-000000001499", "covers 1000 blocks from 500"),  # right size, off the grid
    ],
)
def test_anything_but_one_grid_range_is_refused_naming_the_key_and_the_form(key, why):
    with pytest.raises(PartitionKeyError) as caught:
        parse_key(key, 1_000)
    message = str(caught.value)
    assert repr(key) in message and why in message
    assert "{start:012d}-{end:012d}" in message


def test_a_key_of_another_size_is_refused():
    assert parse_key("000000012000-000000012099", 100) == BlockRange(12_000, 12_099)
    with pytest.raises(PartitionKeyError, match="covers 100 blocks"):
        parse_key("000000012000-000000012099", 1_000)


def test_bad_ranges_and_sizes_are_refused():
    with pytest.raises(PartitionKeyError):
        BlockRange(10, 9)
    with pytest.raises(ValueError, match="positive"):
        range_of(5, 0)
    with pytest.raises(ValueError):
        finished_ranges(100, -1)


def test_finished_ranges_need_their_last_block_confirmations_deep():
    assert finished_ranges(2_999, 0) == [BlockRange(0, 999), BlockRange(1_000, 1_999), BlockRange(2_000, 2_999)]
    assert finished_ranges(2_999, 1)[-1] == BlockRange(1_000, 1_999)
    assert finished_ranges(3_005, 6)[-1] == BlockRange(2_000, 2_999)  # 2999 is exactly 6 deep
    assert finished_ranges(3_004, 6)[-1] == BlockRange(1_000, 1_999)  # 2999 is 5 deep only
    assert finished_ranges(998, 0) == []
    assert finished_ranges(5, 10) == []
    assert finished_ranges(4_500, 0, first_block=3_500) == [BlockRange(3_000, 3_999)]
    assert finished_ranges(4_500, 0, first_block=4_100) == []


@given(head=st.integers(0, 300_000), confirmations=st.integers(0, 5_000), size=st.integers(100, 5_000))
def test_finished_ranges_are_exactly_the_deep_enough_ones(head, confirmations, size):
    done = finished_ranges(head, confirmations, size)
    assert all(head - r.end >= confirmations for r in done)
    next_start = done[-1].end + 1 if done else 0
    assert head - (next_start + size - 1) < confirmations  # the next range is not final yet
    assert [r.start for r in done] == list(range(0, next_start, size))


@given(first=st.integers(0, 10**9), span=st.integers(0, 10**5), size=st.integers(100, 10_000))
def test_ranges_covering_an_interval_are_contiguous_and_minimal(first, span, size):
    last = first + span
    covering = ranges_covering(first, last, size)
    assert first in covering[0] and last in covering[-1]
    assert all(a.end + 1 == b.start for a, b in itertools.pairwise(covering))
    assert all(r.size == size for r in covering)


def test_an_empty_interval_has_no_ranges():
    assert ranges_covering(10, 9) == []
