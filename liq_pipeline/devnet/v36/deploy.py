"""Deploy an Aave V3.6 L2Pool market (spec.py) on a running anvil, from the solc-js build (build.py).

Two mined blocks, as the V3.0 devnet does it (../deploy.py): addresses inside a block are predicted from the
deployer's nonce and one sender's transactions run in nonce order. Block 1: PoolAddressesProvider + ACL admin,
ACLManager and roles, the shared DefaultReserveInterestRateStrategyV2, the libraries (FlashLoanLogic linked to
BorrowLogic), L2PoolInstance and PoolConfiguratorInstance (proxies created by the provider),
AaveProtocolDataProvider, tokens (MintableERC20), price feeds (the devnet's own DevnetAggregator, so prices move
with `actions.set_price`), AaveOracle. Block 2 needs the Pool proxy: L2Encoder, ATokenInstance and
VariableDebtTokenInstance implementations, `initReserves` (rate data in bps), risk parameters, e-mode
categories and their collateral / borrowable bitmaps.

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

from ..abi import call_data, constructor_data, constructor_types, create_address, decode_result
from ..anvil import BLOCK_TIME, CHAIN_ID
from ..market import EModeInfo, Market, ReserveInfo
from ..paths import package_version
from ..rpc import Rpc
from ..solc import compile_contract
from ..txs import CALL_GAS, CREATE_GAS, Chain, Tx
from .build import PACKAGES, Artifacts, build_v36
from .spec import BASE_CURRENCY_UNIT, EMODES, MARKET_ID, PROTOCOL_VERSION, RESERVES, EModeSpec, ReserveSpec

ZERO = "0x0000000000000000000000000000000000000000"
LIBRARIES = ("BorrowLogic", "LiquidationLogic", "PoolLogic", "SupplyLogic", "ConfiguratorLogic")
TREASURY = to_checksum_address(keccak(text="liq-devnet-v36:treasury")[12:])
FEED_DECIMALS = 8


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


@dataclass
class _Plan:
    """One deployer's transactions, addresses predicted from its nonce as they are added."""

    chain: Chain
    build: Artifacts
    deployer: str
    nonce: int
    txs: list[Tx] = field(default_factory=list)

    def create(self, label: str, bytecode: str, types: list[str] | None = None, args: list | None = None) -> str:
        address = create_address(self.deployer, self.nonce)
        data = constructor_data(bytecode, types or [], args or [])
        self.txs.append(Tx(self.deployer, None, data, gas=CREATE_GAS, label=f"deploy {label}"))
        self.nonce += 1
        return address

    def deploy(self, name: str, args: list | None = None, libraries: dict[str, str] | None = None) -> str:
        artifact = self.build[name]
        code = artifact.linked(libraries or {}) if artifact.link_references else artifact.bytecode
        return self.create(name, code, constructor_types(artifact.abi), args)

    def call(self, to: str, signature: str, *args, gas: int = CALL_GAS) -> None:
        self.txs.append(Tx(self.deployer, to, call_data(signature, *args), gas=gas, label=signature.split("(")[0]))
        self.nonce += 1

    def mine(self) -> int:
        self.chain.execute(self.txs, timestamp=self.chain.latest_timestamp() + BLOCK_TIME)
        self.txs = []
        return self.chain.block_number()


def eth_call(rpc: Rpc, to: str, signature: str, out_types: list[str], *args, block: int | str = "latest") -> tuple:
    tag = hex(block) if isinstance(block, int) else block
    return decode_result(out_types, rpc.call("eth_call", {"to": to, "data": call_data(signature, *args)}, tag))


def rate_data(spec: ReserveSpec) -> bytes:
    return encode(["(uint16,uint32,uint32,uint32)"], [spec.rate.as_tuple()])


def deploy_v36_market(
    rpc: Rpc,
    data_dir: Path | str,
    reserves: tuple[ReserveSpec, ...] = RESERVES,
    emodes: tuple[EModeSpec, ...] = EMODES,
    build: Artifacts | None = None,
) -> Deployment:
    """Deploy the market on the node behind `rpc` (anvil with --auto-impersonate and a high gas limit, as
    `anvil.start` runs it). `data_dir` holds the builds: the V3.6 contracts and the price feed."""
    build = build or build_v36(data_dir)
    feed = compile_contract("DevnetAggregator", data_dir)  # the V3.0 devnet's feed (solc 0.8.24): has a setter
    chain = Chain(rpc)
    deployer = to_checksum_address(rpc.call("eth_accounts")[0])
    chain.nonces.prefetch([deployer])
    plan = _Plan(chain, build, deployer, chain.nonces.known[deployer.lower()])
    symbols = [r.symbol for r in reserves]

    with chain.manual_mining():
        # Block 1 ------------------------------------------------------------------------------------------
        provider = plan.deploy("PoolAddressesProvider", [MARKET_ID, deployer])
        plan.call(provider, "setACLAdmin(address)", deployer)  # before the ACLManager reads it
        acl = plan.deploy("ACLManager", [provider])
        plan.call(provider, "setACLManager(address)", acl)
        for role in ("addPoolAdmin", "addEmergencyAdmin", "addRiskAdmin", "addAssetListingAdmin"):
            plan.call(acl, f"{role}(address)", deployer)
        strategy = plan.deploy("DefaultReserveInterestRateStrategyV2", [provider])
        libs = {name: plan.deploy(name) for name in LIBRARIES}
        libs["FlashLoanLogic"] = plan.deploy("FlashLoanLogic", libraries=libs)  # links BorrowLogic
        pool_impl = plan.deploy("L2PoolInstance", [provider, strategy], libraries=libs)
        plan.call(provider, "setPoolImpl(address)", pool_impl, gas=CREATE_GAS)  # creates the proxy
        configurator_impl = plan.deploy("PoolConfiguratorInstance", libraries=libs)
        plan.call(provider, "setPoolConfiguratorImpl(address)", configurator_impl, gas=CREATE_GAS)
        data_provider = plan.deploy("AaveProtocolDataProvider", [provider])
        plan.call(provider, "setPoolDataProvider(address)", data_provider)
        assets, feeds = [], []
        for spec in reserves:
            assets.append(plan.deploy("MintableERC20", [spec.name, spec.symbol, spec.decimals]))
            feeds.append(
                plan.create(
                    f"{spec.symbol} feed",
                    feed.bytecode,
                    ["uint8", "string", "int256"],
                    [FEED_DECIMALS, f"{spec.symbol} / USD", spec.price],
                )
            )
        oracle = plan.deploy("AaveOracle", [provider, assets, feeds, ZERO, ZERO, BASE_CURRENCY_UNIT])
        plan.call(provider, "setPriceOracle(address)", oracle)
        block_one = plan.mine()

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
                plan.call(
                    configurator,
                    "configureReserveAsCollateral(address,uint256,uint256,uint256)",
                    asset,
                    spec.ltv,
                    spec.liquidation_threshold,
                    spec.liquidation_bonus,
                )
            plan.call(configurator, "setReserveBorrowing(address,bool)", asset, spec.borrowable)
            plan.call(configurator, "setReserveFactor(address,uint256)", asset, spec.reserve_factor)
            plan.call(configurator, "setLiquidationProtocolFee(address,uint256)", asset, spec.liquidation_protocol_fee)
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
            for symbol in emode.collateral:
                plan.call(
                    configurator,
                    "setAssetCollateralInEMode(address,uint8,bool)",
                    assets[symbols.index(symbol)],
                    emode.category_id,
                    True,
                )
            for symbol in emode.borrowable:
                plan.call(
                    configurator,
                    "setAssetBorrowableInEMode(address,uint8,bool)",
                    assets[symbols.index(symbol)],
                    emode.category_id,
                    True,
                )
        plan.mine()

    listed = [to_checksum_address(a) for a in eth_call(rpc, pool, "getReservesList()", ["address[]"])[0]]
    reserve_id = {spec.symbol: listed.index(asset) for spec, asset in zip(reserves, assets, strict=True)}

    def first_category(symbol: str) -> int:
        """ReserveInfo.emode_category (one number in the shared format): the lowest category listing the
        reserve as collateral, 0 if none. V3.6 itself has bitmaps: Deployment.emodes."""
        return min((e.category_id for e in emodes if symbol in e.collateral), default=0)

    infos = []
    for spec, asset, feed_address in zip(reserves, assets, feeds, strict=True):
        a_token, stable_debt, variable_debt = (
            to_checksum_address(a)
            for a in eth_call(rpc, data_provider, "getReserveTokensAddresses(address)", ["address"] * 3, asset)
        )
        infos.append(
            ReserveInfo(
                reserve_id=reserve_id[spec.symbol],
                symbol=spec.symbol,
                name=spec.name,
                decimals=spec.decimals,
                asset=asset,
                a_token=a_token,
                variable_debt_token=variable_debt,
                stable_debt_token=stable_debt,  # zero address: V3.2+ has no stable debt
                aggregator=feed_address,
                interest_rate_strategy=strategy,
                ltv=spec.ltv,
                liquidation_threshold=spec.liquidation_threshold,
                liquidation_bonus=spec.liquidation_bonus,
                reserve_factor=spec.reserve_factor,
                liquidation_protocol_fee=spec.liquidation_protocol_fee,
                emode_category=first_category(spec.symbol),
                initial_price=spec.price,
            )
        )
    market = Market(
        chain_id=CHAIN_ID,
        rpc_url=rpc.url,
        protocol_version=PROTOCOL_VERSION,
        packages=package_versions(),
        addresses_provider=provider,
        pool=pool,
        pool_configurator=configurator,
        oracle=oracle,
        data_provider=data_provider,
        acl_manager=acl,
        pool_implementation=pool_impl,
        deployer=deployer,
        admin=deployer,
        treasury=TREASURY,
        block_deployed=block_one,
        base_currency_unit=BASE_CURRENCY_UNIT,
        reserves=tuple(sorted(infos, key=lambda r: r.reserve_id)),
        emode_categories=tuple(
            EModeInfo(e.category_id, e.ltv, e.liquidation_threshold, e.liquidation_bonus, e.label) for e in emodes
        ),
        libraries=libs,
    )
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
    return Deployment(market, encoder, deployed, build.key, {"interest_rate_strategy": strategy})


def package_versions() -> dict[str, str]:
    """The npm versions the market was built from (the V3.6 set plus anvil and the feed's compiler)."""
    names = [*PACKAGES, "@foundry-rs/anvil", "solc"]
    return {name: package_version(name) for name in names}
