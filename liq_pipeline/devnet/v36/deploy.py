"""Deploy an Aave V3.6 L2Pool market (spec.py) on a running anvil, from the solc-js build (build.py).

Two mined blocks, as the V3.0 devnet does it (../deploy.py): addresses inside a block are predicted from the
deployer's nonce and one sender's transactions run in nonce order. Block 1: PoolAddressesProvider + ACL admin,
ACLManager and roles, the shared DefaultReserveInterestRateStrategyV2, the libraries (FlashLoanLogic linked to
BorrowLogic), L2PoolInstance and PoolConfiguratorInstance (proxies created by the provider),
AaveProtocolDataProvider, tokens (MintableERC20), price feeds (the devnet's own DevnetAggregator, so prices move
with `actions.set_price`), AaveOracle. Block 2 needs the Pool proxy: L2Encoder, ATokenInstance and
VariableDebtTokenInstance implementations, `initReserves` (rate data in bps), risk parameters, e-mode
categories and their collateral / borrowable bitmaps. Then seasoning.py ages the market (three more blocks, three
years apart from the first of them): indices far from 1.

The result is the same `Market` description as the V3.0 devnet's (protocol_version "3.6"); the chain reader
needs only its `addresses_provider`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from ..deploying import ZERO, DeployPlan, describe_market, eth_call, reserve_infos
from ..market import Market
from ..paths import package_version
from ..rpc import Rpc
from ..solc import compile_contract
from ..txs import CREATE_GAS
from .build import PACKAGES, Artifacts, build_v36
from .seasoning import SEASON_SECONDS, season
from .spec import BASE_CURRENCY_UNIT, EMODES, MARKET_ID, PROTOCOL_VERSION, RESERVES, EModeSpec, ReserveSpec

LIBRARIES = ("BorrowLogic", "LiquidationLogic", "PoolLogic", "SupplyLogic", "ConfiguratorLogic")
FLASH_PREMIUM_BPS = 5  # Base's FLASHLOAN_PREMIUM_TOTAL (0.05 %)
TREASURY = to_checksum_address(keccak(text="liq-devnet-v36:treasury")[12:])


@dataclass(frozen=True)
class EModeDeployed:
    category_id: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    label: str
    collateral_bitmap: int  # bit = reserve id
    borrowable_bitmap: int


@dataclass(frozen=True)
class Deployment:
    """A deployed V3.6 market: the shared `Market` description plus what only V3.6 has."""

    market: Market
    l2_encoder: str
    emodes: tuple[EModeDeployed, ...]
    build_key: str
    extras: dict[str, Any] = field(default_factory=dict)

    def save(self, directory: Path | str) -> Path:
        """market.json (the shared format, `market.load_market` reads it) and v36.json (the V3.6 extras)."""
        directory = Path(directory)
        path = self.market.save(directory / "market.json")
        extra = {
            "l2_encoder": self.l2_encoder,
            "build_key": self.build_key,
            "emodes": [asdict(e) for e in self.emodes],
            **self.extras,
        }
        tmp = directory / "v36.json.tmp"
        tmp.write_text(json.dumps(extra, indent=2) + "\n")
        tmp.replace(directory / "v36.json")
        return path


def rate_data(spec: ReserveSpec) -> bytes:
    return encode(["(uint16,uint32,uint32,uint32)"], [spec.rate.as_tuple()])


def deploy_v36_market(
    rpc: Rpc,
    data_dir: Path | str,
    reserves: tuple[ReserveSpec, ...] = RESERVES,
    emodes: tuple[EModeSpec, ...] = EMODES,
    build: Artifacts | None = None,
    seasoning_seconds: int = SEASON_SECONDS,
) -> Deployment:
    """Deploy the market on the node behind `rpc` (anvil with --auto-impersonate and a high gas limit, as
    `anvil.start` runs it). `data_dir` holds the builds: the V3.6 contracts and the price feed. Then age it
    `seasoning_seconds` (seasoning.py: indices far from 1; 0 leaves a fresh market)."""
    build = build or build_v36(data_dir)
    feed = compile_contract("DevnetAggregator", data_dir)  # the V3.0 devnet's feed (solc 0.8.24): has a setter
    plan = DeployPlan.start(rpc, build.__getitem__)
    symbols = [r.symbol for r in reserves]

    with plan.chain.manual_mining():
        # Block 1 ------------------------------------------------------------------------------------------
        provider = plan.access_control(MARKET_ID)
        strategy = plan.deploy("DefaultReserveInterestRateStrategyV2", [provider])
        libs = {name: plan.deploy(name) for name in LIBRARIES}
        libs["FlashLoanLogic"] = plan.deploy("FlashLoanLogic", libraries=libs)  # links BorrowLogic
        pool_impl = plan.deploy("L2PoolInstance", [provider, strategy], libraries=libs)
        plan.call(provider, "setPoolImpl(address)", pool_impl, gas=CREATE_GAS)  # creates the proxy
        configurator_impl = plan.deploy("PoolConfiguratorInstance", libraries=libs)
        plan.call(provider, "setPoolConfiguratorImpl(address)", configurator_impl, gas=CREATE_GAS)
        data_provider = plan.deploy("AaveProtocolDataProvider", [provider])
        plan.call(provider, "setPoolDataProvider(address)", data_provider)
        assets, feeds = plan.tokens_and_oracle(provider, reserves, feed.bytecode, BASE_CURRENCY_UNIT)
        plan.mine()

        pool = to_checksum_address(eth_call(rpc, provider, "getPool()", ["address"])[0])
        configurator = to_checksum_address(eth_call(rpc, provider, "getPoolConfigurator()", ["address"])[0])

        # Block 2 ------------------------------------------------------------------------------------------
        encoder = plan.deploy("L2Encoder", [pool])
        a_token_impl = plan.deploy("ATokenInstance", [pool, ZERO, TREASURY])
        variable_impl = plan.deploy("VariableDebtTokenInstance", [pool, ZERO])
        inputs = [
            (
                a_token_impl,
                variable_impl,
                asset,
                f"Aave Devnet {spec.symbol}",
                f"aDev{spec.symbol}",
                f"Aave Devnet Variable Debt {spec.symbol}",
                f"variableDebtDev{spec.symbol}",
                b"",
                rate_data(spec),
            )
            for spec, asset in zip(reserves, assets, strict=True)
        ]
        plan.call(
            configurator,
            "initReserves((address,address,address,string,string,string,string,bytes,bytes)[])",
            inputs,
            gas=CREATE_GAS * 4,
        )
        for spec, asset in zip(reserves, assets, strict=True):
            if spec.liquidation_threshold:  # an LT-0 reserve starts that way: nothing to configure
                plan.collateral_parameters(configurator, asset, spec)
            plan.call(configurator, "setReserveBorrowing(address,bool)", asset, spec.borrowable)
            plan.call(configurator, "setReserveFlashLoaning(address,bool)", asset, True)  # on, as on Base
            plan.fees(configurator, asset, spec)
        plan.call(configurator, "updateFlashloanPremium(uint128)", FLASH_PREMIUM_BPS)
        for emode in emodes:
            plan.call(
                configurator,
                "setEModeCategory(uint8,uint16,uint16,uint16,string)",
                emode.category_id,
                emode.ltv,
                emode.liquidation_threshold,
                emode.liquidation_bonus,
                emode.label,
            )
            for setter, listed_symbols in (
                ("setAssetCollateralInEMode(address,uint8,bool)", emode.collateral),
                ("setAssetBorrowableInEMode(address,uint8,bool)", emode.borrowable),
            ):
                for symbol in listed_symbols:
                    plan.call(configurator, setter, assets[symbols.index(symbol)], emode.category_id, True)
        plan.mine()

    def first_category(spec: ReserveSpec) -> int:
        """ReserveInfo.emode_category (one number in the shared format): the lowest category listing the
        reserve as collateral, 0 if none. V3.6 itself has bitmaps: Deployment.emodes."""
        return min((e.category_id for e in emodes if spec.symbol in e.collateral), default=0)

    infos = reserve_infos(rpc, provider, reserves, assets, feeds, lambda _spec: strategy, first_category)
    reserve_id = {info.symbol: info.reserve_id for info in infos}
    version = (PROTOCOL_VERSION, package_versions())
    market = describe_market(rpc, plan, provider, pool_impl, infos, emodes, libs, version, TREASURY, BASE_CURRENCY_UNIT)
    deployed = tuple(
        EModeDeployed(
            e.category_id,
            e.ltv,
            e.liquidation_threshold,
            e.liquidation_bonus,
            e.label,
            sum(1 << reserve_id[s] for s in e.collateral),
            sum(1 << reserve_id[s] for s in e.borrowable),
        )
        for e in emodes
    )
    seasoned = season(rpc, market, reserves) if seasoning_seconds else None
    extras = {"interest_rate_strategy": strategy, "seasoned_seconds": seasoning_seconds, "seasoned_block": seasoned}
    return Deployment(market, encoder, deployed, build.key, extras)


def package_versions() -> dict[str, str]:
    """The npm versions the market was built from (the V3.6 set plus anvil and the feed's compiler)."""
    names = [*PACKAGES, "@foundry-rs/anvil", "solc"]
    return {name: package_version(name) for name in names}
