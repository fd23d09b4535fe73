"""The engine's parameters from the settings: one mapping for the harness, Dagster and the watcher."""

from __future__ import annotations

from ..config import Settings
from ..risk.params import EngineParams
from ..risk.scenarios import default_specs


def engine_params(settings: Settings) -> EngineParams:
    """PREDICTIVE_ENABLED=false (the default) keeps only what is true now: the baseline scenario with no
    look-ahead, i.e. candidates are the users already at or below HF = 1 + buffer. True adds the configured
    scenarios and the projection over PREDICTIVE_HORIZON_SEC. LIQ_FUSED_KERNEL: the engine's per-block float pass
    (EngineParams.fused_threads)."""
    if not settings.predictive_enabled:
        return EngineParams(
            scenarios=default_specs(["baseline"]),
            horizon_sec=0.0,
            hf_buffer_bps=settings.predictive_hf_buffer_bps,
            volatility_scaling=False,
            fused_threads=int(settings.liq_fused_kernel),
        )
    specs = default_specs(
        list(settings.predictive_scenarios),
        settings.predictive_adverse_shock_bps,
        settings.predictive_extreme_shock_bps,
        settings.predictive_adverse_sigmas,
        settings.predictive_extreme_sigmas,
    )
    return EngineParams(
        scenarios=specs,
        horizon_sec=settings.predictive_horizon_sec,
        hf_buffer_bps=settings.predictive_hf_buffer_bps,
        volatility_scaling=settings.predictive_volatility_scaling,
        fused_threads=int(settings.liq_fused_kernel),
    )
