"""Resources: the chain, the lake and Redis, each built from the settings (environment / .env) of the run.

Dagster runs are fresh processes: nothing is shared in memory between them; Redis and the lake carry the state.
"""

from __future__ import annotations

import dagster as dg

from ..cache import open_market_cache
from ..chain.discovery import discover_market
from ..config import Settings, current_settings
from ..lake.open import open_lake
from ..risk.versions import rules_for


class ChainResource(dg.ConfigurableResource):
    """RPC_URL + AAVE_ADDRESSES_PROVIDER + AAVE_PROTOCOL_VERSION from the settings."""

    def settings(self) -> Settings:
        return current_settings()  # parsed again only when the environment or .env changed

    def client(self):
        settings = self.settings()
        if settings.rpc_url is None:
            raise dg.Failure("RPC_URL is not set: the platform needs a node (make dev sets the devnet's)")
        return settings.node_client()

    def head(self) -> int:
        with self.client() as rpc:
            return rpc.quantity("eth_blockNumber")

    def market(self, rpc, block: int):
        settings = self.settings()
        if settings.aave_addresses_provider is None:
            raise dg.Failure("AAVE_ADDRESSES_PROVIDER is not set")
        rules = rules_for(settings.aave_protocol_version)
        market = discover_market(
            rpc, settings.aave_addresses_provider, block, rules, multicall=settings.multicall_address
        )
        return market, rules


class LakeResource(dg.ConfigurableResource):
    """The Parquet lake under DATA_DIR/lake, ranges of LAKE_RANGE_BLOCKS."""

    def lake(self):
        return open_lake(current_settings())


class RedisResource(dg.ConfigurableResource):
    """REDIS_URL, or the embedded server under DATA_DIR/redis."""

    def market_cache(self, chain_id: int, pool: str):
        return open_market_cache(current_settings(), chain_id, pool)


RESOURCES = {"chain": ChainResource(), "lake": LakeResource(), "redis": RedisResource()}
