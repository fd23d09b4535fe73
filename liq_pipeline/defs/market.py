"""Which market this code location serves: MARKET_NAME (docs/deployment.md, "Many markets").

Several markets share one Dagster instance (one webserver, one daemon, one Postgres), each in a code location of
its own whose environment names it. Asset keys are global to an instance, so a named market's keys start with its
name (`base/liquidation_candidates`): each market's assets, runs and checks stay apart. Unnamed (make dev, one
market), the keys are the plain names.

Read once, when Dagster loads the code location: Dagster injects a location's environment (its `.env`, see
docs/deployment.md) into the code server and every run worker before it imports this package.
"""

from __future__ import annotations

import dagster as dg

from ..config import load_settings

MARKET_NAME: str | None = load_settings().market_name
KEY_PREFIX: list[str] = [MARKET_NAME] if MARKET_NAME else []


def asset_key(name: str) -> dg.AssetKey:
    """The key of this market's asset `name`."""
    return dg.AssetKey([*KEY_PREFIX, name])


def op_name(name: str) -> str:
    """The name of the op that materializes asset `name` (run config is keyed by it): Dagster names an asset's op
    after its key, parts joined by `__`."""
    return asset_key(name).to_python_identifier()


def of_this_market(run: dg.DagsterRun) -> bool:
    """Whether a run of the instance belongs to this market (the alert sensors see every location's runs: those of
    `liq backfill` have no code location). Unnamed: every run is."""
    if not MARKET_NAME:
        return True
    origin = run.remote_job_origin
    if origin is not None and origin.location_name == MARKET_NAME:
        return True
    keys = [*(run.asset_selection or ()), *(check.asset_key for check in run.asset_check_selection or ())]
    return any(key.path[0] == MARKET_NAME for key in keys)
