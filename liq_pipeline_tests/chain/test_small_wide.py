"""The chain reader's small-read path builds the same wide frame as the pivot (long_to_wide)."""

from __future__ import annotations

import random

import polars as pl
import pytest

from liq_pipeline.chain.positions import LONG_SCHEMA, _small_wide
from liq_pipeline.risk.market import long_to_wide


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("with_stable", [True, False])
def test_small_reads_equal_the_pivot(seed: int, with_stable: bool):
    rng = random.Random(seed)
    rows: dict[str, list] = {name: [] for name in LONG_SCHEMA}
    users = [f"0x{rng.randint(0, 10**6):040x}" for _ in range(12)]
    for user in users:
        emode = rng.choice([0, 1])
        for reserve in rng.sample(range(5), rng.randint(1, 4)):
            rows["user"].append(user)
            rows["emode"].append(emode)
            rows["reserve_id"].append(reserve)
            rows["scaled_atoken"].append(rng.choice([0, rng.randint(1, 10**30)]))
            rows["scaled_variable_debt"].append(rng.choice([0, rng.randint(1, 10**24)]))
            rows["stable_debt"].append(rng.choice([0, rng.randint(1, 10**20)]))
            rows["collateral_enabled"].append(rng.random() < 0.5)
    long = pl.DataFrame(rows, schema=LONG_SCHEMA).sample(fraction=1.0, shuffle=True, seed=seed)
    if not with_stable:
        long = long.drop("stable_debt")
    legs = long.to_dict(as_series=False) | ({} if with_stable else {"stable_debt": []})
    assert _small_wide(legs, list(range(5)), with_stable).equals(long_to_wide(long, list(range(5))))
