"""Deploy the full Aave V3 market from @aave/core-v3's artifacts, in the order Aave's own deploy scripts use.

Two mined blocks do it. Block 1: libraries, PoolAddressesProvider, ACLManager, Pool and PoolConfigurator
(implementations, then proxies through the provider), AaveProtocolDataProvider, tokens, price feeds,
AaveOracle, rate strategies. Block 2 needs the Pool PROXY address from block 1: token implementations,
initReserves and every risk parameter. Contract addresses inside a block are known beforehand (CREATE address
= f(deployer, nonce)) and one sender's transactions run in nonce order, so dependent steps may share a block.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eth_utils import keccak, to_checksum_address

from . import artifacts
from .abi import call_data, constructor_data, constructor_types, create_address, decode_result
from .anvil import BLOCK_TIME, CHAIN_ID
from .market import EModeInfo, Market, ReserveInfo
from .paths import package_version
from .rpc import Rpc
from .solc import compile_contract
from .spec import BASE_CURRENCY_UNIT, EMODES, MARKET_ID, RESERVES, ReserveSpec
from .txs import CALL_GAS, CREATE_GAS, Chain, Tx

ZERO = "0x0000000000000000000000000000000000000000"
LIBRARIES = (
    "SupplyLogic",
    "BorrowLogic",
    "LiquidationLogic",
    "EModeLogic",
    "BridgeLogic",
    "ConfiguratorLogic",
    "PoolLogic",
)
TREASURY = to_checksum_address(keccak(text="liq-devnet:treasury")[12:])
PROTOCOL_VERSION = "3.0"  # @aave/core-v3 1.19.x is Aave V3.0.x: V3.0 rounding


@dataclass
class _Plan:
    """Transactions of one deployer, addresses predicted from its nonce as they are added."""

    chain: Chain
    deployer: str
    nonce: int
    txs: list[Tx]

    def create(self, label: str, bytecode: str, types: list[str] | None = None, args: list | None = None) -> str:
        address = create_address(self.deployer, self.nonce)
        data = constructor_data(bytecode, types or [], args or [])
        self.txs.append(Tx(self.deployer, None, data, gas=CREATE_GAS, label=f"deploy {label}"))
        self.nonce += 1
        return address

    def deploy(self, name: str, args: list | None = None, libraries: dict[str, str] | None = None) -> str:
        artifact = artifacts.load(name)
        code = artifact.linked(libraries or {}) if artifact.link_references else artifact.bytecode
        return self.create(name, code, constructor_types(artifact.abi), args)

    def call(self, to: str, signature: str, *args, gas: int = CALL_GAS) -> None:
        self.txs.append(Tx(self.deployer, to, call_data(signature, *args), gas=gas, label=signature.split("(")[0]))
        self.nonce += 1

    def mine(self) -> None:
        self.chain.execute(self.txs, timestamp=self.chain.latest_timestamp() + BLOCK_TIME)
        self.txs = []


def _eth_call(rpc: Rpc, to: str, signature: str, out_types: list[str], *args) -> tuple:
    return decode_result(out_types, rpc.call("eth_call", {"to": to, "data": call_data(signature, *args)}, "latest"))


def deploy_market(rpc: Rpc, data_dir: Path | str, reserves: tuple[ReserveSpec, ...] = RESERVES) -> Market:
    """Deploy everything on the node behind `rpc`; returns the description (`Market.save` writes it).

    `data_dir` is only where the compiled price feed is cached."""
    chain = Chain(rpc)
    deployer = to_checksum_address(rpc.call("eth_accounts")[0])
    chain.nonces.prefetch([deployer])
    plan = _Plan(chain, deployer, chain.nonces.known[deployer.lower()], [])
    # Chain.execute takes the nonces again from the same counter: keep both in step.
    chain.nonces.known[deployer.lower()] = plan.nonce

    with chain.manual_mining():
        # Block 1 ------------------------------------------------------------------------------------------
        libs = {name: plan.deploy(name) for name in LIBRARIES}
        libs["FlashLoanLogic"] = plan.deploy("FlashLoanLogic", libraries=libs)

        provider = plan.deploy("PoolAddressesProvider", [MARKET_ID, deployer])
        plan.call(provider, "setACLAdmin(address)", deployer)  # before ACLManager exists, else error '75'
        acl = plan.deploy("ACLManager", [provider])
        plan.call(provider, "setACLManager(address)", acl)
        for role in ("addPoolAdmin", "addEmergencyAdmin", "addRiskAdmin", "addAssetListingAdmin"):
            plan.call(acl, f"{role}(address)", deployer)

        pool_impl = plan.deploy("Pool", [provider], libraries=libs)
        plan.call(provider, "setPoolImpl(address)", pool_impl, gas=CREATE_GAS)  # creates the proxy
        configurator_impl = plan.deploy("PoolConfigurator", libraries=libs)
        plan.call(provider, "setPoolConfiguratorImpl(address)", configurator_impl, gas=CREATE_GAS)
        data_provider = plan.deploy("AaveProtocolDataProvider", [provider])
        plan.call(provider, "setPoolDataProvider(address)", data_provider)

        feed = compile_contract("DevnetAggregator", data_dir)
        assets, feeds = [], []
        for spec in reserves:
            assets.append(plan.deploy("MintableERC20", [spec.name, spec.symbol, spec.decimals]))
            feeds.append(
                plan.create(
                    f"{spec.symbol} feed",
                    feed.bytecode,
                    ["uint8", "string", "int256"],
                    [8, f"{spec.symbol} / USD", spec.price],
                )
            )
        oracle = plan.deploy("AaveOracle", [provider, assets, feeds, ZERO, ZERO, BASE_CURRENCY_UNIT])
        plan.call(provider, "setPriceOracle(address)", oracle)

        strategies: dict[str, str] = {}
        for spec in reserves:
            if spec.strategy.name not in strategies:
                strategies[spec.strategy.name] = plan.deploy(
                    "DefaultReserveInterestRateStrategy", [provider, *spec.strategy.args()]
                )
        plan.mine()

        pool = to_checksum_address(_eth_call(rpc, provider, "getPool()", ["address"])[0])
        configurator = to_checksum_address(_eth_call(rpc, provider, "getPoolConfigurator()", ["address"])[0])
        block_one = chain.block_number()

        # Block 2 ------------------------------------------------------------------------------------------
        a_token_impl = plan.deploy("AToken", [pool])
        stable_impl = plan.deploy("StableDebtToken", [pool])
        variable_impl = plan.deploy("VariableDebtToken", [pool])
        inputs = [
            (
                a_token_impl,
                stable_impl,
                variable_impl,
                spec.decimals,
                strategies[spec.strategy.name],
                asset,
                TREASURY,
                ZERO,
                f"Aave Devnet {spec.symbol}",
                f"aDev{spec.symbol}",
                f"Aave Devnet Variable Debt {spec.symbol}",
                f"variableDebtDev{spec.symbol}",
                f"Aave Devnet Stable Debt {spec.symbol}",
                f"stableDebtDev{spec.symbol}",
                b"",
            )
            for spec, asset in zip(reserves, assets, strict=True)
        ]
        plan.call(
            configurator,
            "initReserves((address,address,address,uint8,address,address,address,address,string,string,string,"
            "string,string,string,bytes)[])",
            inputs,
            gas=CREATE_GAS * 4,
        )
        for spec, asset in zip(reserves, assets, strict=True):
            plan.call(
                configurator,
                "configureReserveAsCollateral(address,uint256,uint256,uint256)",
                asset,
                spec.ltv,
                spec.liquidation_threshold,
                spec.liquidation_bonus,
            )
            plan.call(configurator, "setReserveFactor(address,uint256)", asset, spec.reserve_factor)
            plan.call(configurator, "setLiquidationProtocolFee(address,uint256)", asset, spec.liquidation_protocol_fee)
            plan.call(configurator, "setReserveBorrowing(address,bool)", asset, True)
        for emode in EMODES:
            plan.call(
                configurator,
                "setEModeCategory(uint8,uint16,uint16,uint16,address,string)",
                emode.category_id,
                emode.ltv,
                emode.liquidation_threshold,
                emode.liquidation_bonus,
                ZERO,
                emode.label,
            )
        for spec, asset in zip(reserves, assets, strict=True):
            if spec.emode_category:
                plan.call(configurator, "setAssetEModeCategory(address,uint8)", asset, spec.emode_category)
        plan.mine()

    listed = [to_checksum_address(a) for a in _eth_call(rpc, pool, "getReservesList()", ["address[]"])[0]]
    infos = []
    for spec, asset, feed_address in zip(reserves, assets, feeds, strict=True):
        a_token, stable_debt, variable_debt = (
            to_checksum_address(a)
            for a in _eth_call(rpc, data_provider, "getReserveTokensAddresses(address)", ["address"] * 3, asset)
        )
        infos.append(
            ReserveInfo(
                reserve_id=listed.index(asset),
                symbol=spec.symbol,
                name=spec.name,
                decimals=spec.decimals,
                asset=asset,
                a_token=a_token,
                variable_debt_token=variable_debt,
                stable_debt_token=stable_debt,
                aggregator=feed_address,
                interest_rate_strategy=strategies[spec.strategy.name],
                ltv=spec.ltv,
                liquidation_threshold=spec.liquidation_threshold,
                liquidation_bonus=spec.liquidation_bonus,
                reserve_factor=spec.reserve_factor,
                liquidation_protocol_fee=spec.liquidation_protocol_fee,
                emode_category=spec.emode_category,
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
            EModeInfo(e.category_id, e.ltv, e.liquidation_threshold, e.liquidation_bonus, e.label) for e in EMODES
        ),
        libraries=libs,
    )
    return market


def package_versions() -> dict[str, str]:
    """Installed npm versions; they are part of the state cache key."""
    return {
        "@aave/core-v3": package_version("@aave/core-v3"),
        "@foundry-rs/anvil": package_version("@foundry-rs/anvil"),
        "solc": package_version("solc"),
    }
