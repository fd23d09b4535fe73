"""Deploy the full Aave V3 market from @aave/core-v3's artifacts, in the order Aave's own deploy scripts use.

Two mined blocks do it. Block 1: libraries, PoolAddressesProvider, ACLManager, Pool and PoolConfigurator
(implementations, then proxies through the provider), AaveProtocolDataProvider, tokens, price feeds,
AaveOracle, rate strategies. Block 2 needs the Pool PROXY address from block 1: token implementations,
initReserves and every risk parameter. Contract addresses inside a block are known beforehand (CREATE address
= f(deployer, nonce)) and one sender's transactions run in nonce order, so dependent steps may share a block.
"""

from __future__ import annotations

from pathlib import Path

from eth_utils import keccak, to_checksum_address

from . import artifacts
from .deploying import ZERO, DeployPlan, describe_market, eth_call, reserve_infos
from .market import Market
from .paths import package_version
from .rpc import Rpc
from .solc import compile_contract
from .spec import BASE_CURRENCY_UNIT, EMODES, MARKET_ID, RESERVES, ReserveSpec
from .txs import CREATE_GAS

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


def deploy_market(rpc: Rpc, data_dir: Path | str, reserves: tuple[ReserveSpec, ...] = RESERVES) -> Market:
    """Deploy everything on the node behind `rpc`; returns the description (`Market.save` writes it).

    `data_dir` is only where the compiled price feed is cached."""
    plan = DeployPlan.start(rpc, artifacts.load)

    with plan.chain.manual_mining():
        # Block 1 ------------------------------------------------------------------------------------------
        libs = {name: plan.deploy(name) for name in LIBRARIES}
        libs["FlashLoanLogic"] = plan.deploy("FlashLoanLogic", libraries=libs)

        provider = plan.access_control(MARKET_ID)

        pool_impl = plan.deploy("Pool", [provider], libraries=libs)
        plan.call(provider, "setPoolImpl(address)", pool_impl, gas=CREATE_GAS)  # creates the proxy
        configurator_impl = plan.deploy("PoolConfigurator", libraries=libs)
        plan.call(provider, "setPoolConfiguratorImpl(address)", configurator_impl, gas=CREATE_GAS)
        data_provider = plan.deploy("AaveProtocolDataProvider", [provider])
        plan.call(provider, "setPoolDataProvider(address)", data_provider)

        feed = compile_contract("DevnetAggregator", data_dir)
        assets, feeds = plan.tokens_and_oracle(provider, reserves, feed.bytecode, BASE_CURRENCY_UNIT)

        strategies: dict[str, str] = {}
        for spec in reserves:
            if spec.strategy.name not in strategies:
                strategies[spec.strategy.name] = plan.deploy(
                    "DefaultReserveInterestRateStrategy", [provider, *spec.strategy.args()]
                )
        plan.mine()

        pool = to_checksum_address(eth_call(rpc, provider, "getPool()", ["address"])[0])
        configurator = to_checksum_address(eth_call(rpc, provider, "getPoolConfigurator()", ["address"])[0])

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
            plan.collateral_parameters(configurator, asset, spec)
            plan.fees(configurator, asset, spec)
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

    infos = reserve_infos(
        rpc,
        provider,
        reserves,
        assets,
        feeds,
        lambda spec: strategies[spec.strategy.name],
        lambda spec: spec.emode_category,
    )
    version = (PROTOCOL_VERSION, package_versions())
    return describe_market(rpc, plan, provider, pool_impl, infos, EMODES, libs, version, TREASURY, BASE_CURRENCY_UNIT)


def package_versions() -> dict[str, str]:
    """Installed npm versions; they are part of the state cache key."""
    return {
        "@aave/core-v3": package_version("@aave/core-v3"),
        "@foundry-rs/anvil": package_version("@foundry-rs/anvil"),
        "solc": package_version("solc"),
    }
