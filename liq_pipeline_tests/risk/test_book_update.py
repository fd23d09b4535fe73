"""PositionBook.update: replacing re-read users' rows in place gives the same book as building it anew."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from liq_pipeline.risk import book as position_book
from liq_pipeline.risk.book import MAX_CHUNKS, build_book
from liq_pipeline.risk.engine import evaluate
from liq_pipeline.risk.health import health_factors
from liq_pipeline.risk.market import EModeCategory, Leg, UserPosition, positions_frame
from liq_pipeline.risk.params import EngineParams
from liq_pipeline.risk.scenarios import default_specs
from liq_pipeline_tests.risk.factories import market, reserve

RESERVES = [
    reserve(0, "WETH", 18, 2_000 * 10**8, 8250, emode=1),
    reserve(1, "WBTC", 8, 60_000 * 10**8, 7800),
    reserve(2, "USDC", 6, 10**8, 8500, stable=True),
]
MARKET = market(RESERVES, emode=[EModeCategory(1, 9000, 9300, 10100)])


def _user(rng: random.Random, address: str) -> UserPosition:
    legs = {}
    for r in rng.sample([0, 1, 2], rng.randint(1, 3)):
        unit = 10 ** RESERVES[r].decimals
        legs[r] = Leg(rng.randint(0, 50) * unit, rng.randint(0, 20) * unit // 3, 0, rng.random() < 0.9)
    return UserPosition(address, rng.choice([0, 0, 1]), legs)


@pytest.mark.parametrize("seed", range(5))
def test_updated_rows_equal_a_fresh_build(seed: int):
    rng = random.Random(seed)
    users = {f"0x{i:040x}": _user(rng, f"0x{i:040x}") for i in range(300)}
    book = build_book(positions_frame(users.values(), MARKET.reserve_ids), MARKET)
    generation = book.generation
    for _block in range(30):  # many small updates and arrivals: the frame in slices, arrays with spare rows
        changed = {a: _user(rng, a) for a in rng.sample(sorted(users), rng.randint(1, 6))}
        arrivals = {f"0x{len(users) + i:040x}": None for i in range(rng.randint(0, 2))}
        changed.update({a: _user(rng, a) for a in arrivals})
        users.update(changed)
        book.exact_positions(np.arange(book.height))  # kept for the exact path: must not outlive an update
        book.update(positions_frame(changed.values(), MARKET.reserve_ids), MARKET)
        if _block % 10 == 9:  # the watcher compacts after its writes
            book.compact()
            assert max(book.positions.n_chunks("all")) <= MAX_CHUNKS
    assert book.generation == generation  # same layout: row-aligned state stays valid
    # rows never moved: the first 300 users keep their rows, arrivals follow in order
    assert book.positions["user"].to_list() == list(users)
    assert book.users_at(np.arange(book.height)) == list(users)
    fresh = build_book(positions_frame(users.values(), MARKET.reserve_ids), MARKET)
    assert book.positions.equals(fresh.positions)
    for name in ("coll", "weighted", "debt", "stable", "holds", "owes", "lt_spread", "lt_uniform", "exact_only"):
        np.testing.assert_array_equal(getattr(book, name), getattr(fresh, name), err_msg=name)
    np.testing.assert_array_equal(np.nan_to_num(book.lt_min, nan=-1), np.nan_to_num(fresh.lt_min, nan=-1))
    assert health_factors(book, MARKET).equals(health_factors(fresh, MARKET))
    every = np.arange(book.height)
    assert book.exact_positions(every) == fresh.exact_positions(every)
    params = EngineParams(default_specs(["baseline", "adverse", "extreme"]))
    assert evaluate(book, MARKET, params).candidates.equals(evaluate(fresh, MARKET, params).candidates)


def test_a_changed_configuration_is_refused():
    book = build_book(positions_frame([_user(random.Random(1), "0x1")], MARKET.reserve_ids), MARKET)
    lowered = market(
        [reserve(0, "WETH", 18, 2_000 * 10**8, 8000, emode=1), *RESERVES[1:]],
        emode=[EModeCategory(1, 9000, 9300, 10100)],
    )
    with pytest.raises(ValueError, match="build a new book"):
        book.update(positions_frame([_user(random.Random(2), "0x1")], MARKET.reserve_ids), lowered)


def test_an_empty_update_changes_nothing():
    book = build_book(positions_frame([_user(random.Random(1), "0x1")], MARKET.reserve_ids), MARKET)
    book.update(positions_frame([], MARKET.reserve_ids).cast(book.positions.schema), MARKET)
    assert book.version == 0 and book.positions.height == 1 and isinstance(book.positions, pl.DataFrame)


def test_a_user_reread_without_any_position_is_emptied_not_kept():
    rng = random.Random(3)
    users = [_user(rng, f"0x{i:040x}") for i in range(3)]
    book = build_book(positions_frame(users, MARKET.reserve_ids), MARKET)
    gone = users[1].user
    book.update(positions_frame([], MARKET.reserve_ids).cast(book.positions.schema), MARKET, reread=[gone, "0xnew"])
    row = book.positions.row(1, named=True)
    assert row["user"] == gone and book.positions.height == 3  # the row stays (rows never move), emptied
    assert all(v in (0, False) for k, v in row.items() if k != "user")
    assert health_factors(book, MARKET)["hf_baseline"][1] == float("inf")
    assert not book.coll[1].any() and not book.debt[1].any()


def test_changed_rows_are_remembered_for_the_recent_updates_only(monkeypatch):
    monkeypatch.setattr(position_book, "KEPT_CHANGES", 3)
    rng = random.Random(4)
    users = [_user(rng, f"0x{i:040x}") for i in range(5)]
    book = build_book(positions_frame(users, MARKET.reserve_ids), MARKET)
    for i in range(5):
        book.update(positions_frame([_user(rng, users[i].user)], MARKET.reserve_ids), MARKET)
    assert book.rows_changed_since(5).tolist() == []
    assert book.rows_changed_since(3).tolist() == [3, 4]
    assert book.rows_changed_since(2).tolist() == [2, 3, 4]
    assert book.rows_changed_since(1) is None  # forgotten: a screen that old is not used


def test_exact_positions_kept_past_their_limit_start_over_with_the_rows_asked_for(monkeypatch):
    monkeypatch.setattr(position_book, "MAX_EXACT_KEPT", 10)
    rng = random.Random(5)
    users = [_user(rng, f"0x{i:040x}") for i in range(20)]
    book = build_book(positions_frame(users, MARKET.reserve_ids), MARKET)
    fresh = build_book(positions_frame(users, MARKET.reserve_ids), MARKET)
    assert book.exact_positions(np.arange(5)) == fresh.exact_positions(np.arange(5))
    wider = np.array([*range(11), 3])  # over the limit with rows kept before, one asked for twice
    assert book.exact_positions(wider) == [fresh.exact_positions(np.array([row]))[0] for row in wider]
