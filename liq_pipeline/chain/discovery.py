"""Discover an Aave V3 market from its PoolAddressesProvider alone, and read its reserves at a block.

Everything the engine needs is read from the chain, nothing is configured by hand: the pool, the oracle, the data
provider, each reserve's configuration bitmap (decimals, LTV, threshold, bonus, protocol fee, e-mode category,
flags), its token addresses, indices, rates and last update, the oracle prices and the e-mode categories (V3.2+:
collateral and borrowable bitmaps, label), and, from the versions that have them, each reserve's liquidation grace
period and virtual balance (3.1+) and deficit (3.3+).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field

from eth_abi.exceptions import DecodingError
from eth_utils import to_checksum_address

from ..risk.market import EModeCategory, MarketState, ReserveState
from ..risk.versions import ProtocolRules
from .abi import function
from .multicall import MULTICALL3, aggregate_request, has_multicall, split_aggregate
from .rpc import NodeUnavailable, RpcClient, RpcError

ZERO = "0x0000000000000000000000000000000000000000"
MAX_EMODE_PROBE = 32  # V3.2+ has no list of categories: probe ids 1..32 (Base uses a handful)


class ReaderError(RuntimeError):
    """The chain answered something the reader cannot use; the message names the block and the address."""


class AggregateUnusable(ReaderError):
    """The market's multicall did not answer at this block (read_market_state then reads without it)."""


def _bits(word: int, start: int, width: int) -> int:
    return (word >> start) & ((1 << width) - 1)


@dataclass(frozen=True)
class ReserveConfig:
    """ReserveConfiguration.sol bit layout (V3.0-3.7)."""

    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    decimals: int
    active: bool
    frozen: bool
    borrowing_enabled: bool
    paused: bool
    reserve_factor: int
    liquidation_protocol_fee: int
    emode_category: int  # meaningful up to V3.1
    debt_ceiling: int  # isolation mode (bits 212-251), 2 decimals; 0 = not isolated

    @classmethod
    def decode(cls, word: int) -> ReserveConfig:
        return cls(
            ltv=_bits(word, 0, 16),
            liquidation_threshold=_bits(word, 16, 16),
            liquidation_bonus=_bits(word, 32, 16),
            decimals=_bits(word, 48, 8),
            active=bool(_bits(word, 56, 1)),
            frozen=bool(_bits(word, 57, 1)),
            borrowing_enabled=bool(_bits(word, 58, 1)),
            paused=bool(_bits(word, 60, 1)),
            reserve_factor=_bits(word, 64, 16),
            liquidation_protocol_fee=_bits(word, 152, 16),
            emode_category=_bits(word, 168, 8),
            debt_ceiling=_bits(word, 212, 40),
        )


@dataclass(frozen=True)
class ReserveInfo:
    reserve_id: int
    asset: str
    symbol: str
    a_token: str
    variable_debt_token: str
    stable_debt_token: str
    config: ReserveConfig


@dataclass(frozen=True)
class Market:
    """Addresses and static configuration of one Aave V3 market (as of the block it was read at)."""

    chain_id: int
    addresses_provider: str
    pool: str
    oracle: str
    data_provider: str
    base_currency_unit: int
    reserves: tuple[ReserveInfo, ...]
    emode_categories: dict[int, EModeCategory] = field(default_factory=dict)
    # AaveOracle source per asset: the feed whose Chainlink AnswerUpdated events announce new prices. On live
    # chains a source is often a proxy that emits nothing; prices are read from the oracle every block anyway.
    price_sources: dict[str, str] = field(default_factory=dict)
    # Multicall3 (or compatible) deployed at the discovery block: many eth_calls read as one (chain/multicall.py)
    multicall: str | None = None
    # The per-reserve getters the market's version has, read with its state at every block (RESERVE_EXTRAS)
    reserve_extras: tuple[str, ...] = ()

    @property
    def by_asset(self) -> dict[str, ReserveInfo]:
        return {r.asset: r for r in self.reserves}

    @property
    def by_id(self) -> dict[int, ReserveInfo]:
        return {r.reserve_id: r for r in self.reserves}

    def token_addresses(self) -> list[str]:
        tokens = []
        for r in self.reserves:
            tokens += [r.a_token, r.variable_debt_token]
        return tokens


# Per-reserve Pool getters added after V3.0: (ReserveState field, ABI group, function). Read at every block with
# the reserves' data: through one aggregate3 they cost ~0.2 ms for 6 reserves, against ~2-4 ms as 18 plain eth_calls
# on a busy anvil; an executor needs them current (a grace period can be set, a deficit grows, in any block).
RESERVE_EXTRAS: dict[str, tuple[str, str]] = {
    "liquidation_grace_until": ("PoolV31", "getLiquidationGracePeriod"),  # 3.1+ (ValidationLogic)
    "virtual_underlying_balance": ("PoolV31", "getVirtualUnderlyingBalance"),  # 3.1+ (virtual accounting)
    "deficit": ("PoolV33", "getReserveDeficit"),  # 3.3+ (LiquidationLogic._burnBadDebt)
}


def reserve_extras_for(rules: ProtocolRules) -> tuple[str, ...]:
    """The RESERVE_EXTRAS fields a Pool of `rules`' version answers."""
    wanted = {
        "liquidation_grace_until": rules.liquidation_grace_period,
        "virtual_underlying_balance": rules.virtual_accounting,
        "deficit": rules.dust_rule_and_deficits,
    }
    return tuple(name for name in RESERVE_EXTRAS if wanted[name])


def _one(rpc: RpcClient, contract: str, name: str, to: str, *args, block: int) -> tuple:
    fn = function(contract, name)
    method, params = fn.request(to, *args, block=block)
    result = rpc.call(method, *params)
    try:
        return fn.decode(result)
    except (DecodingError, ValueError) as error:
        raise ReaderError(f"{contract}.{name} at {to} (block {block}) returned undecodable data: {error}") from None


def discover_market(
    rpc: RpcClient,
    addresses_provider: str,
    block: int,
    rules: ProtocolRules,
    symbols: bool = True,
    multicall: str | None = MULTICALL3,
) -> Market:
    """The market's addresses and configuration at `block`; `multicall`: the aggregate3 contract to read through
    when it has code at `block` (None: plain JSON-RPC batches)."""
    provider = to_checksum_address(addresses_provider)
    code = rpc.call("eth_getCode", provider, hex(block))
    if code in ("0x", "0x0", None):
        raise ReaderError(f"no contract at AAVE_ADDRESSES_PROVIDER {provider} (block {block})")
    chain_id = rpc.quantity("eth_chainId")
    (pool,) = _one(rpc, "PoolAddressesProvider", "getPool", provider, block=block)
    (oracle,) = _one(rpc, "PoolAddressesProvider", "getPriceOracle", provider, block=block)
    (data_provider,) = _one(rpc, "PoolAddressesProvider", "getPoolDataProvider", provider, block=block)
    pool, oracle = to_checksum_address(pool), to_checksum_address(oracle)
    (assets,) = _one(rpc, "Pool", "getReservesList", pool, block=block)
    assets = [to_checksum_address(a) for a in assets]
    (unit,) = _one(rpc, "AaveOracle", "BASE_CURRENCY_UNIT", oracle, block=block)

    reserve_data = function("Pool", "getReserveData")
    symbol_fn = function("ERC20", "symbol")
    requests = [reserve_data.request(pool, asset, block=block) for asset in assets]
    if symbols:
        requests += [symbol_fn.request(asset, block=block) for asset in assets]
    answers = rpc.batch(requests, raise_on_error=False)
    reserves = []
    for i, asset in enumerate(assets):
        answer = answers[i]
        if isinstance(answer, RpcError):
            raise ReaderError(f"Pool.getReserveData({asset}) failed at block {block}: {answer}")
        data = reserve_data.decode(answer)[0]
        symbol = asset[:10]
        if symbols and not isinstance(answers[len(assets) + i], RpcError):
            # some tokens (MKR) return bytes32: keep the address prefix then
            with contextlib.suppress(DecodingError, ValueError):
                symbol = symbol_fn.decode(answers[len(assets) + i])[0]
        reserves.append(
            ReserveInfo(
                reserve_id=int(data[7]),
                asset=asset,
                symbol=symbol,
                a_token=to_checksum_address(data[8]),
                stable_debt_token=to_checksum_address(data[9]),
                variable_debt_token=to_checksum_address(data[10]),
                config=ReserveConfig.decode(int(data[0][0])),
            )
        )
    categories = _emode_categories(rpc, pool, oracle, reserves, block, rules)
    source_fn = function("AaveOracle", "getSourceOfAsset")
    sources = {}
    for asset, answer in zip(
        assets,
        rpc.batch([source_fn.request(oracle, a, block=block) for a in assets], raise_on_error=False),
        strict=True,
    ):
        if not isinstance(answer, RpcError):
            source = to_checksum_address(source_fn.decode(answer)[0])
            if source != ZERO:
                sources[asset] = source
    return Market(
        chain_id,
        provider,
        pool,
        oracle,
        to_checksum_address(data_provider),
        int(unit),
        tuple(reserves),
        categories,
        sources,
        has_multicall(rpc, multicall, block),
        reserve_extras_for(rules),
    )


def _emode_categories(
    rpc: RpcClient, pool: str, oracle: str, reserves: list[ReserveInfo], block: int, rules: ProtocolRules
) -> dict[int, EModeCategory]:
    out: dict[int, EModeCategory] = {}
    if rules.emode_price_source:  # V3.0-3.1: categories named by the reserves' configuration
        ids = sorted({r.config.emode_category for r in reserves if r.config.emode_category})
        fn = function("Pool", "getEModeCategoryData")
        for category_id, answer in zip(ids, rpc.batch([fn.request(pool, i, block=block) for i in ids]), strict=True):
            ltv, lt, bonus, source, label = fn.decode(answer)[0]
            price = 0
            if int(source, 16) != 0:
                # the category's price source is priced through the oracle, as the Pool does
                (price,) = _one(rpc, "AaveOracle", "getAssetPrice", oracle, source, block=block)
            bitmap = sum(1 << r.reserve_id for r in reserves if r.config.emode_category == category_id)
            out[category_id] = EModeCategory(category_id, ltv, lt, bonus, int(price), bitmap, label)
        return out
    config = function("PoolV32", "getEModeCategoryCollateralConfig")
    getters = [
        function("PoolV32", name)
        for name in ("getEModeCategoryCollateralBitmap", "getEModeCategoryBorrowableBitmap", "getEModeCategoryLabel")
    ]
    ids = range(1, MAX_EMODE_PROBE + 1)
    answers = rpc.batch(
        [fn.request(pool, i, block=block) for fn in (config, *getters) for i in ids],
        raise_on_error=False,
    )
    for i in ids:
        config_answer, *rest = (answers[k * MAX_EMODE_PROBE + i - 1] for k in range(1 + len(getters)))
        if any(isinstance(a, RpcError) for a in (config_answer, *rest)):
            raise ReaderError(
                f"e-mode category {i} of pool {pool} unreadable at block {block}: is AAVE_PROTOCOL_VERSION right?"
            )
        ltv, lt, bonus = config.decode(config_answer)[0]
        if lt:
            collateral, borrowable, label = (fn.decode(a)[0] for fn, a in zip(getters, rest, strict=True))
            out[i] = EModeCategory(i, ltv, lt, bonus, 0, int(collateral), label, int(borrowable))
    return out


def _extras_requests(market: Market, block: int) -> list:
    calls = [
        function(*RESERVE_EXTRAS[name]).request(market.pool, r.asset, block=block)
        for name in market.reserve_extras
        for r in market.reserves
    ]
    return [aggregate_request(market.multicall, calls)] if calls and market.multicall else calls


def market_state_requests(market: Market, block: int) -> list:
    """The batch that reads the market at `block`: the header, every reserve's data, the oracle prices, then the
    version's per-reserve extras (one aggregate3 call where the market has a multicall)."""
    reserve_data = function("Pool", "getReserveData")
    prices_fn = function("AaveOracle", "getAssetsPrices")
    assets = [r.asset for r in market.reserves]
    return [
        ("eth_getBlockByNumber", [hex(block), False]),
        *[reserve_data.request(market.pool, a, block=block) for a in assets],
        prices_fn.request(market.oracle, assets, block=block),
        *_extras_requests(market, block),
    ]


def _extras_from_answers(market: Market, block: int, answers: list) -> dict[str, list[int]]:
    """Field -> one value per reserve, from the answers after the prices; ReaderError names a failed getter."""
    n = len(market.reserves)
    expected = n * len(market.reserve_extras)
    if not expected:
        return {}
    if market.multicall:
        try:
            answers = split_aggregate(answers[0], expected)
        except ValueError as problem:
            raise AggregateUnusable(f"multicall {market.multicall} unusable at block {block}: {problem}") from None
    out: dict[str, list[int]] = {}
    for k, name in enumerate(market.reserve_extras):
        fn = function(*RESERVE_EXTRAS[name])
        values = []
        for info, answer in zip(market.reserves, answers[k * n : (k + 1) * n], strict=True):
            if isinstance(answer, RpcError):
                raise ReaderError(f"Pool.{fn.name}({info.asset}) failed at block {block}: {answer}")
            values.append(int(fn.decode(answer)[0]))
        out[name] = values
    return out


def market_state_from_answers(
    market: Market, block: int, rules: ProtocolRules, answers: list, stable_symbols: tuple[str, ...] = ()
) -> MarketState:
    """Decode the answers to market_state_requests (same order)."""
    header = answers[0]
    if header is None or isinstance(header, RpcError):
        raise ReaderError(f"block {block} does not exist on the node yet")
    timestamp = int(header["timestamp"], 16)
    reserve_data = function("Pool", "getReserveData")
    prices_fn = function("AaveOracle", "getAssetsPrices")
    n = len(market.reserves)
    prices_answer = answers[1 + n]
    if isinstance(prices_answer, RpcError):
        raise ReaderError(f"AaveOracle.getAssetsPrices failed at block {block}: {prices_answer}")
    (prices,) = prices_fn.decode(prices_answer)
    extras = _extras_from_answers(market, block, answers[2 + n :])
    stable = {s.upper() for s in stable_symbols}
    states = []
    for k, (info, answer, price) in enumerate(zip(market.reserves, answers[1 : 1 + n], prices, strict=True)):
        if isinstance(answer, RpcError):
            raise ReaderError(f"Pool.getReserveData({info.asset}) failed at block {block}: {answer}")
        data = reserve_data.decode(answer)[0]
        config = ReserveConfig.decode(int(data[0][0]))
        states.append(
            ReserveState(
                reserve_id=info.reserve_id,
                asset=info.asset,
                symbol=info.symbol,
                decimals=config.decimals,
                ltv=config.ltv,
                liquidation_threshold=config.liquidation_threshold,
                liquidation_bonus=config.liquidation_bonus,
                liquidation_protocol_fee=config.liquidation_protocol_fee,
                liquidity_index=int(data[1]),
                liquidity_rate=int(data[2]),
                variable_borrow_index=int(data[3]),
                variable_borrow_rate=int(data[4]),
                last_update_timestamp=int(data[6]),
                price=int(price),
                emode_category=config.emode_category if rules.emode_price_source else 0,
                is_stable=info.symbol.upper() in stable,
                active=config.active,
                frozen=config.frozen,
                paused=config.paused,
                borrowing_enabled=config.borrowing_enabled,
                debt_ceiling=config.debt_ceiling if rules.isolation_and_siloed else 0,
                **{name: values[k] for name, values in extras.items()},
            )
        )
    late = next((r for r in states if r.last_update_timestamp > timestamp), None)
    if late is not None:
        # A reserve updated after the block's own time: the node answered some calls from a later block (seen on
        # anvil while a block was being mined); the block is read again rather than valued wrong.
        raise NodeUnavailable(
            f"block {block} (time {timestamp}) came with {late.symbol} updated at {late.last_update_timestamp}: "
            "a later block's state; reading it again"
        )
    return MarketState(block, timestamp, rules, tuple(states), dict(market.emode_categories), market.base_currency_unit)


def read_market_state(
    rpc: RpcClient, market: Market, block: int, rules: ProtocolRules, stable_symbols: tuple[str, ...] = ()
) -> MarketState:
    """Indices, rates, last updates and oracle prices of every reserve at `block`, with the block's timestamp."""
    answers = rpc.batch(market_state_requests(market, block), raise_on_error=False)
    try:
        return market_state_from_answers(market, block, rules, answers, stable_symbols)
    except AggregateUnusable:  # a block before the multicall was deployed: plain eth_calls, one more round trip
        plain = dataclasses.replace(market, multicall=None)
        answers = rpc.batch(market_state_requests(plain, block), raise_on_error=False)
        return market_state_from_answers(plain, block, rules, answers, stable_symbols)
