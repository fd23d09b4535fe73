"""The deployed market's description: what `market.json` holds, read and written in one place.

Consumers (the chain reader, the watcher, tests) take every address from here; nothing else hardcodes devnet
addresses. Field names are stable: treat a rename as a breaking change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .paths import load_description, market_json_path, write_json


@dataclass(frozen=True)
class ReserveInfo:
    reserve_id: int  # index in Pool.getReservesList(): the reserve's bit in the user configuration
    symbol: str
    name: str
    decimals: int
    asset: str
    a_token: str
    variable_debt_token: str
    stable_debt_token: str
    aggregator: str
    interest_rate_strategy: str
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    reserve_factor: int
    liquidation_protocol_fee: int
    emode_category: int
    initial_price: int


@dataclass(frozen=True)
class EModeInfo:
    category_id: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    label: str
    price_source: str = "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True)
class Market:
    chain_id: int
    rpc_url: str
    protocol_version: str  # rounding rules the engine must use (liq_pipeline.risk.versions.rules_for)
    packages: dict[str, str]  # npm package versions the market was built from
    addresses_provider: str
    pool: str
    pool_configurator: str
    oracle: str
    data_provider: str
    acl_manager: str
    pool_implementation: str
    deployer: str
    admin: str
    treasury: str
    block_deployed: int
    base_currency_unit: int
    reserves: tuple[ReserveInfo, ...]
    emode_categories: tuple[EModeInfo, ...]
    libraries: dict[str, str] = field(default_factory=dict)

    @property
    def by_symbol(self) -> dict[str, ReserveInfo]:
        return {r.symbol: r for r in self.reserves}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Market:
        data = dict(raw)
        data["reserves"] = tuple(ReserveInfo(**r) for r in raw["reserves"])
        data["emode_categories"] = tuple(EModeInfo(**e) for e in raw["emode_categories"])
        return cls(**data)

    def with_rpc_url(self, url: str) -> Market:
        return Market.from_json(self.to_json() | {"rpc_url": url})

    def save(self, path: Path) -> Path:
        return write_json(path, self.to_json())


def load_market(data_dir_or_file: Path | str) -> Market:
    """From a market.json file, or from <DATA_DIR>/devnet/market.json given the data dir."""
    missing, again = "run `liq devnet up` first", ": run `liq devnet up` again"
    return load_description(data_dir_or_file, market_json_path, Market.from_json, "market description", missing, again)
