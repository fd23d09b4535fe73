"""Property: the vectorized path decides exactly like the integer path, for every user, in every regime.

Portfolios are random (decimals 6/8/18, thresholds, e-mode, disabled collateral, zero-LT assets, dust, whales,
accrued indices) and many users are then pushed onto HF = 1 itself: their debt is rescaled so the exact HF lands
within a few wei of 1e18 on either side, where float arithmetic alone flips decisions.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liq_pipeline.risk.exact import account_data
from liq_pipeline.risk.health import health_factors
from liq_pipeline.risk.market import EModeCategory, Leg, UserPosition, positions_frame
from liq_pipeline.risk.scenarios import ScenarioSpec, scenario_prices
from liq_pipeline.risk.wadray import RAY, WAD
from liq_pipeline_tests.risk.factories import T0, market, reserve

VERSIONS = ["3.0", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7"]


def _random_market(rng: random.Random, version: str):
    reserves = []
    for rid in range(rng.randint(2, 8)):
        decimals = rng.choice([6, 8, 18])
        price = rng.choice([10**8, 99_980_000, 3_000 * 10**8, 95_000 * 10**8, 125_000_000, rng.randint(1, 10**13)])
        lt = rng.choice([0, 6500, 7800, 8000, 8250, 8300, 8600, 9500])
        reserves.append(
            reserve(
                rid,
                f"T{rid}",
                decimals,
                price,
                lt,
                income=RAY + rng.randint(0, RAY // 5),
                debt_index=RAY + rng.randint(0, RAY // 4),
                liquidity_rate=rng.randint(0, RAY // 10),
                borrow_rate=rng.randint(0, RAY // 5),
                last_update=T0 - rng.randint(0, 86_400),
                emode=1 if rng.random() < 0.4 else 0,
            )
        )
    category = EModeCategory(1, 9000, rng.choice([9300, 9500, 9700]), 10100)
    return market(reserves, version, timestamp=T0, emode=[category])


def _random_user(rng: random.Random, m, address: str) -> UserPosition:
    ids = list(m.reserve_ids)
    legs: dict[int, Leg] = {}
    for rid in rng.sample(ids, rng.randint(1, min(4, len(ids)))):
        unit = m.by_id[rid].unit
        size = rng.choice([rng.randint(1, 50), rng.randint(1, 10**4) * unit, rng.randint(1, 10**8) * unit])
        legs[rid] = Leg(scaled_atoken=size, collateral_enabled=rng.random() > 0.1)
    for rid in rng.sample(ids, rng.randint(1, min(2, len(ids)))):
        unit = m.by_id[rid].unit
        owed = rng.choice([rng.randint(1, 50), rng.randint(1, 10**4) * unit, rng.randint(1, 10**7) * unit])
        current = legs.get(rid, Leg())
        legs[rid] = Leg(current.scaled_atoken, owed, 0, current.collateral_enabled)
    return UserPosition(address, 1 if rng.random() < 0.3 else 0, legs)


def _pushed_to_one(position: UserPosition, m, offset: int) -> UserPosition:
    """Rescale the debt so the exact HF sits right at 1e18 (plus a small offset in scaled units)."""
    data = account_data(position, m)
    if data.total_debt_base == 0 or data.health_factor == 0:
        return position
    legs = {}
    for rid, leg in position.legs.items():
        owed = leg.scaled_variable_debt * data.health_factor // WAD
        legs[rid] = Leg(
            leg.scaled_atoken,
            max(owed + offset, 0) if leg.scaled_variable_debt else 0,
            0,
            leg.collateral_enabled,
        )
    return UserPosition(position.user, position.emode_category, legs)


def _check_market(seed: int, version: str) -> int:
    """Assert equal decisions for one random market; return how many (user, scenario) sat within 1e-6 of 1."""
    rng = random.Random(seed)
    m = _random_market(rng, version)
    users = [_random_user(rng, m, f"0x{i:040x}") for i in range(60)]
    users += [_pushed_to_one(u, m, rng.choice([-2, -1, 0, 1, 2])) for u in users[:40]]
    users = [UserPosition(f"0x{i:040x}", u.emode_category, u.legs) for i, u in enumerate(users)]
    shocked = scenario_prices(ScenarioSpec("adverse", rng.choice([0, 1, 100, 200, 2_000]), 1.0), m)
    scenarios = [scenario_prices(ScenarioSpec("baseline", 0, 0.0), m), shocked]
    result = health_factors(positions_frame(users, m.reserve_ids), m, scenarios)
    by_user = {row["user"]: row for row in result.iter_rows(named=True)}
    near = 0
    for position in users:
        row = by_user[position.user]
        for s in scenarios:
            exact = account_data(position, m, s.collateral, s.debt)
            assert row[f"liquidatable_{s.name}"] == exact.liquidatable, (position, s.name, exact, row)
            near += abs(exact.health_factor - WAD) < 10**12
            if exact.liquidatable:
                assert row[f"hf_{s.name}"] < 1.0
    return near


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), version=st.sampled_from(VERSIONS))
def test_vectorized_decisions_equal_exact(seed: int, version: str):
    _check_market(seed, version)


def test_the_boundary_is_really_exercised():
    near = sum(_check_market(seed, VERSIONS[seed % len(VERSIONS)]) for seed in range(16))
    assert near >= 100, f"only {near} user-scenarios within 1e-6 of HF = 1"


def test_exact_only_users_of_emode_price_sources():
    # V3.0-3.1: a category with its own price source prices its assets for its users: always decided exactly.
    usd = reserve(0, "USDC", 6, 10**8, 8000, emode=1)
    dai = reserve(1, "DAI", 18, 10**8, 8000, emode=1)
    m = market([usd, dai], "3.0", emode=[EModeCategory(1, 9000, 9500, 10100, price=98_000_000)])
    position = UserPosition("0x01", 1, {0: Leg(1_000 * 10**6, 0, 0, True), 1: Leg(0, 940 * 10**18, 0, False)})
    result = health_factors(positions_frame([position], m.reserve_ids), m)
    assert result["exact_baseline"].to_list() == [True]
    assert result["liquidatable_baseline"].to_list() == [account_data(position, m).liquidatable]
