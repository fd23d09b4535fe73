"""What both market deployments (deploy.py for V3.0, v36/deploy.py for V3.6) do alike: one deployer's
transactions with addresses predicted from its nonce, access control, tokens with their price feeds, and the
`Market` description read back from the chain."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_checksum_address

from .abi import call_data, constructor_data, constructor_types, create_address, decode_result
from .anvil import BLOCK_TIME, CHAIN_ID
from .artifacts import Artifact
from .market import EModeInfo, Market, ReserveInfo
from .rpc import Rpc
from .spec import EModeSpec, ReserveParameters
from .txs import CALL_GAS, CREATE_GAS, Chain, Tx

ZERO = "0x0000000000000000000000000000000000000000"
FEED_DECIMALS = 8


@dataclass
class DeployPlan:
    """One deployer's transactions, addresses predicted from its nonce as they are added; `load` gives a
    contract's artifact by name."""

    chain: Chain
    load: Callable[[str], Artifact]
    deployer: str
    nonce: int
    txs: list[Tx] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)  # mined so far

    @classmethod
    def start(cls, rpc: Rpc, load: Callable[[str], Artifact]) -> DeployPlan:
        """A plan for the node's first account, from its current nonce."""
        chain = Chain(rpc)
        deployer = to_checksum_address(rpc.call("eth_accounts")[0])
        chain.nonces.prefetch([deployer])
        return cls(chain, load, deployer, chain.nonces.known[deployer.lower()])

    def create(self, label: str, bytecode: str, types: list[str] | None = None, args: list | None = None) -> str:
        address = create_address(self.deployer, self.nonce)
        data = constructor_data(bytecode, types or [], args or [])
        self.txs.append(Tx(self.deployer, None, data, gas=CREATE_GAS, label=f"deploy {label}"))
        self.nonce += 1
        return address

    def deploy(self, name: str, args: list | None = None, libraries: dict[str, str] | None = None) -> str:
        artifact = self.load(name)
        code = artifact.linked(libraries or {}) if artifact.link_references else artifact.bytecode
        return self.create(name, code, constructor_types(artifact.abi), args)

    def call(self, to: str, signature: str, *args, gas: int = CALL_GAS) -> None:
        self.txs.append(Tx(self.deployer, to, call_data(signature, *args), gas=gas, label=signature.split("(")[0]))
        self.nonce += 1

    def mine(self) -> int:
        self.chain.execute(self.txs, timestamp=self.chain.latest_timestamp() + BLOCK_TIME)
        self.txs = []
        self.blocks.append(self.chain.block_number())
        return self.blocks[-1]

    def collateral_parameters(self, configurator: str, asset: str, spec: ReserveParameters) -> None:
        """LTV, liquidation threshold and bonus of a reserve."""
        signature = "configureReserveAsCollateral(address,uint256,uint256,uint256)"
        self.call(configurator, signature, asset, spec.ltv, spec.liquidation_threshold, spec.liquidation_bonus)

    def fees(self, configurator: str, asset: str, spec: ReserveParameters) -> None:
        """Reserve factor and liquidation protocol fee of a reserve."""
        self.call(configurator, "setReserveFactor(address,uint256)", asset, spec.reserve_factor)
        self.call(configurator, "setLiquidationProtocolFee(address,uint256)", asset, spec.liquidation_protocol_fee)

    def access_control(self, market_id: str) -> str:
        """PoolAddressesProvider and ACLManager, the deployer holding every admin role: the provider."""
        provider = self.deploy("PoolAddressesProvider", [market_id, self.deployer])
        self.call(provider, "setACLAdmin(address)", self.deployer)  # before ACLManager exists, else error '75'
        acl = self.deploy("ACLManager", [provider])
        self.call(provider, "setACLManager(address)", acl)
        for role in ("addPoolAdmin", "addEmergencyAdmin", "addRiskAdmin", "addAssetListingAdmin"):
            self.call(acl, f"{role}(address)", self.deployer)
        return provider

    def tokens_and_oracle(
        self, provider: str, reserves: Iterable[ReserveParameters], feed_bytecode: str, base_currency_unit: int
    ) -> tuple[list[str], list[str]]:
        """A MintableERC20 and a price feed (the devnet's DevnetAggregator) per reserve, then the AaveOracle
        over them: (assets, feeds)."""
        assets, feeds = [], []
        for spec in reserves:
            assets.append(self.deploy("MintableERC20", [spec.name, spec.symbol, spec.decimals]))
            feeds.append(
                self.create(
                    f"{spec.symbol} feed",
                    feed_bytecode,
                    ["uint8", "string", "int256"],
                    [FEED_DECIMALS, f"{spec.symbol} / USD", spec.price],
                )
            )
        oracle = self.deploy("AaveOracle", [provider, assets, feeds, ZERO, ZERO, base_currency_unit])
        self.call(provider, "setPriceOracle(address)", oracle)
        return assets, feeds


def eth_call(rpc: Rpc, to: str, signature: str, out_types: list[str], *args, block: int | str = "latest") -> tuple:
    tag = hex(block) if isinstance(block, int) else block
    return decode_result(out_types, rpc.call("eth_call", {"to": to, "data": call_data(signature, *args)}, tag))


def _provided(rpc: Rpc, provider: str, getter: str) -> str:
    """An address the PoolAddressesProvider holds (getPool, getPriceOracle, ...)."""
    return to_checksum_address(eth_call(rpc, provider, f"{getter}()", ["address"])[0])


def reserve_infos(
    rpc: Rpc,
    provider: str,
    reserves: Sequence[ReserveParameters],
    assets: Sequence[str],
    feeds: Sequence[str],
    strategy_of: Callable[[Any], str],
    emode_category_of: Callable[[Any], int],
) -> list[ReserveInfo]:
    """The deployed reserves as `ReserveInfo`s, by reserve id (the Pool's listing order)."""
    pool, data_provider = _provided(rpc, provider, "getPool"), _provided(rpc, provider, "getPoolDataProvider")
    listed = [to_checksum_address(a) for a in eth_call(rpc, pool, "getReservesList()", ["address[]"])[0]]
    infos = []
    for spec, asset, feed_address in zip(reserves, assets, feeds, strict=True):
        a_token, stable_debt, variable_debt = (
            to_checksum_address(a)
            for a in eth_call(rpc, data_provider, "getReserveTokensAddresses(address)", ["address"] * 3, asset)
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
                stable_debt_token=stable_debt,  # zero address on V3.2+: no stable debt
                aggregator=feed_address,
                interest_rate_strategy=strategy_of(spec),
                ltv=spec.ltv,
                liquidation_threshold=spec.liquidation_threshold,
                liquidation_bonus=spec.liquidation_bonus,
                reserve_factor=spec.reserve_factor,
                liquidation_protocol_fee=spec.liquidation_protocol_fee,
                emode_category=emode_category_of(spec),
                initial_price=spec.price,
            )
        )
    return sorted(infos, key=lambda r: r.reserve_id)


def describe_market(
    rpc: Rpc,
    plan: DeployPlan,
    provider: str,
    pool_implementation: str,
    reserves: Sequence[ReserveInfo],
    emodes: Iterable[EModeSpec],
    libraries: dict[str, str],
    version: tuple[str, dict[str, str]],
    treasury: str,
    base_currency_unit: int,
) -> Market:
    """The `Market` description of a deployment, its contracts read from the PoolAddressesProvider: the
    deployer is its admin, it was deployed in the plan's first mined block. version: (protocol version, the
    package versions it was built from)."""
    protocol_version, packages = version
    return Market(
        chain_id=CHAIN_ID,
        rpc_url=rpc.url,
        protocol_version=protocol_version,
        packages=packages,
        addresses_provider=provider,
        pool=_provided(rpc, provider, "getPool"),
        pool_configurator=_provided(rpc, provider, "getPoolConfigurator"),
        oracle=_provided(rpc, provider, "getPriceOracle"),
        data_provider=_provided(rpc, provider, "getPoolDataProvider"),
        acl_manager=_provided(rpc, provider, "getACLManager"),
        pool_implementation=pool_implementation,
        deployer=plan.deployer,
        admin=plan.deployer,
        treasury=treasury,
        block_deployed=plan.blocks[0],
        base_currency_unit=base_currency_unit,
        reserves=tuple(reserves),
        emode_categories=tuple(
            EModeInfo(e.category_id, e.ltv, e.liquidation_threshold, e.liquidation_bonus, e.label) for e in emodes
        ),
        libraries=libraries,
    )
