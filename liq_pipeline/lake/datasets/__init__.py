"""The lake's datasets, one module each (schema next to extraction), like cryo's. Dependencies between them:

pool_events -> reserve_indices, borrower_snapshots (known users), liquidation_outcomes
price_histories (independent)
liquidation_candidates (engine output) -> liquidation_outcomes
watcher_blocks (the watcher's per-block records, from Redis)
liquidation_executions (the executor's attempts, from Redis)
"""

from __future__ import annotations

from ..spec import DatasetSpec
from . import (
    borrower_snapshots,
    liquidation_candidates,
    liquidation_executions,
    liquidation_outcomes,
    pool_events,
    price_histories,
    reserve_indices,
    watcher_blocks,
)

DATASETS: dict[str, DatasetSpec] = {
    module.SPEC.name: module.SPEC
    for module in (
        pool_events,
        reserve_indices,
        price_histories,
        borrower_snapshots,
        liquidation_candidates,
        liquidation_outcomes,
        watcher_blocks,
        liquidation_executions,
    )
}

__all__ = ["DATASETS"]
