"""What the engine is asked: its scenarios, horizon and buffer, and the price trends it projects with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from .scenarios import ScenarioSpec


@dataclass(frozen=True)
class AssetTrend:
    drift_per_sec: float = 0.0
    volatility_per_sqrt_sec: float | None = None


@dataclass(frozen=True)
class EngineParams:
    scenarios: Sequence[ScenarioSpec]
    horizon_sec: float = 180.0
    hf_buffer_bps: int = 40
    volatility_scaling: bool = False
    # the per-block float pass (settings: LIQ_FUSED_KERNEL): 0 the numpy pass (risk/health.py), 1 the fused
    # kernel (risk/fused.py) on the calling thread, N > 1 the fused kernel over N of numba's threads; the same
    # decisions every way (tests compare them)
    fused_threads: int = 1

    @property
    def threshold(self) -> float:
        return 1.0 + self.hf_buffer_bps / 10_000


def trends_from_window(stats: pl.DataFrame, reserve_of_asset: Mapping[str, int]) -> dict[int, AssetTrend]:
    """AssetTrend per reserve id from price_window_stats rows (asset -> reserve id mapping given)."""
    out = {}
    for row in stats.iter_rows(named=True):
        reserve_id = reserve_of_asset.get(row["asset"])
        if reserve_id is None:
            continue
        out[reserve_id] = AssetTrend(row["drift_per_sec"] or 0.0, row["volatility_per_sqrt_sec"])
    return out
