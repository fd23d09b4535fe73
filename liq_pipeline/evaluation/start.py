"""A tracker as the settings ask for it: resumed from saved positions (Redis), or read from the chain's events
since START_BLOCK. Shared by the watcher's start and each Dagster evaluation run."""

from __future__ import annotations

import polars as pl

from ..cache.positions import PositionsSnapshot
from ..chain.discovery import Market
from ..chain.rpc import RpcClient
from ..config import Settings
from ..risk.versions import ProtocolRules
from .tracker import Tracker


def start_tracker(
    rpc: RpcClient,
    settings: Settings,
    market: Market,
    rules: ProtocolRules,
    at_block: int,
    snapshot: PositionsSnapshot | None = None,
    windows: pl.DataFrame | None = None,
) -> Tracker:
    """From `snapshot` (at its block, with the price `windows`) when given, else bootstrapped at `at_block`."""
    if snapshot is not None:
        return Tracker.resume(
            rpc,
            market,
            rules,
            snapshot.frame,
            snapshot.block,
            windows,
            settings.stable_asset_symbols,
            settings.predictive_price_window,
            settings.predictive_ema_span,
        )
    return Tracker.bootstrap(
        rpc,
        settings.aave_addresses_provider,
        rules,
        settings.start_block,
        at_block,
        settings.stable_asset_symbols,
        price_window=settings.predictive_price_window,
        ema_span=settings.predictive_ema_span,
        multicall=settings.multicall_address,
    )
