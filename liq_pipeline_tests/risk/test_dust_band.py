"""A dust debt under solid collateral is decided without the exact path; every other dust case still takes it.

health._decide (and the fused pass's phase 3, risk/fused.py) band a (user, scenario) whose debt or collateral is
within its rounding slack of zero. A dust debt (a few wei left by a repay or a liquidation) under collateral far
above its slack has an exact HF of at least (C - slack_c) x lowest threshold / 10^4 / (D + slack_d): over
DUST_DEBT_HF it is not liquidatable whatever the exact debt, and the exact path is not asked (on the 100k devnet
2 % of the users were such, re-decided exactly twice a block). Dust collateral, dust on both sides, a held LT-0 leg
(V3.6+: the lowest threshold is 0) stay banded. Every decision equals exact.account_data's.
"""

from __future__ import annotations

import numpy as np
import pytest

from liq_pipeline.risk.book import build_book
from liq_pipeline.risk.exact import account_data
from liq_pipeline.risk.health import float_health
from liq_pipeline.risk.market import Leg, UserPosition, positions_frame
from liq_pipeline.risk.scenarios import ScenarioSpec, scenario_prices
from liq_pipeline_tests.risk.factories import T0, market, reserve
from liq_pipeline_tests.risk.test_health_property import VERSIONS

USDC, WETH, ZERO_LT = 0, 1, 2


def _market(version: str):
    return market(
        [
            reserve(USDC, "USDC", 6, 10**8, 7800, last_update=T0 - 600),
            reserve(WETH, "WETH", 18, 3_000 * 10**8, 8300, last_update=T0 - 600),
            reserve(ZERO_LT, "OLD", 18, 2 * 10**8, 0, last_update=T0 - 600),  # an offboarded asset: LT 0
        ],
        version,
        timestamp=T0,
    )


def _users(m) -> dict[str, UserPosition]:
    weth, usdc = m.by_id[WETH].unit, m.by_id[USDC].unit
    people = {
        # dust debt under solid collateral: decided without the exact path
        "dust debt": {WETH: Leg(5 * weth, 0, 0, True), USDC: Leg(0, 3)},
        "one wei of debt": {WETH: Leg(weth // 10, 0, 0, True), USDC: Leg(0, 1)},
        # still banded
        "dust collateral": {WETH: Leg(40, 0, 0, True), USDC: Leg(0, 2_000 * usdc)},
        "dust on both sides": {WETH: Leg(40, 0, 0, True), USDC: Leg(0, 2)},
        "dust debt under dust-sized collateral": {USDC: Leg(3, 0, 0, True), WETH: Leg(0, 1)},
        "dust debt and an LT-0 leg": {WETH: Leg(5 * weth, 0, 0, True), ZERO_LT: Leg(10 * weth, 0, 0, True)},
    }
    people["dust debt and an LT-0 leg"][USDC] = Leg(0, 3)
    return {name: UserPosition(f"0x{i:040x}", 0, legs) for i, (name, legs) in enumerate(people.items())}


@pytest.mark.parametrize("version", VERSIONS)
def test_a_dust_debt_under_solid_collateral_needs_no_exact_path(version: str):
    m = _market(version)
    users = _users(m)
    specs = [ScenarioSpec("baseline", 0, 0.0), ScenarioSpec("shocked", 5_000, 2.0)]
    scenarios = [scenario_prices(spec, m) for spec in specs]
    book = build_book(positions_frame(list(users.values()), m.reserve_ids), m)
    hf, band, *_sums = float_health(book, m, scenarios)
    banded = dict(zip(users, band.any(axis=1).tolist(), strict=True))
    assert not banded["dust debt"] and not banded["one wei of debt"]
    assert banded["dust collateral"] and banded["dust on both sides"]
    assert banded["dust debt under dust-sized collateral"]
    # V3.6+ counts an LT-0 leg as collateral: the lowest held threshold is then 0 and nothing is proven
    assert banded["dust debt and an LT-0 leg"] is m.rules.counts_zero_threshold_collateral
    for row, (name, position) in enumerate(users.items()):
        for column, s in enumerate(scenarios):
            exact = account_data(position, m, s.collateral, s.debt)
            if not band[row, column]:  # the float decision stands: it must be the exact one
                assert (hf[row, column] < 1.0) == exact.liquidatable, (version, name, s.name)
    if version in ("3.0", "3.7"):  # the fused pass bands alike (every version: risk/test_fused.py)
        pytest.importorskip("numba")
        from liq_pipeline.risk.fused import fused_float, fused_health

        np.testing.assert_array_equal(fused_float(book, m, scenarios).band, band)
        decided = fused_health(book, m, scenarios)
        for row, position in enumerate(users.values()):
            for column, s in enumerate(scenarios):
                exact = account_data(position, m, s.collateral, s.debt)
                assert (decided.hf[row, column] < 1.0) == exact.liquidatable
