"""A real Uniswap V2 on the devnet: the factory and pairs from npm `@uniswap/v2-core`'s build artifacts, one pair
per two reserves, liquidity at the AaveOracle's prices, and the arbitrage that pulls pools back to the oracle.

Every reserve is paired with every other (10 pairs on V3.0's five reserves, 15 on V3.6's six): whatever
(collateral, debt) a liquidation picks, one swap on one pair turns the seized collateral into the debt asset,
which is what a flash-loan liquidator does. Both sides of each pair are worth `depth_usd` (default $2M a side):
selling $50k of collateral loses 2.7 % (fee included), $250k 11 %, $1M 33 %: a typical liquidation keeps most of
its 5-10 % bonus, a whale's ($0.5M-$10M at the close factor) loses more than the bonus in one swap, so sizing
against the pool decides how much of a whale is worth taking.

No router: the pair's own `swap` after a transfer in (here a mint straight to the pair, the test tokens being
mintable by anyone) is what a liquidator contract calls; the amounts come from `risk/amm.py`, exact to the unit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from itertools import combinations
from pathlib import Path
from typing import Any

from eth_utils import is_address, keccak, to_checksum_address

from ..risk.amm import MAX_RESERVE, Swap, matching_amount, price_ratio, swap_to_price
from .abi import call_data, constructor_data, create_address, decode_result
from .accounts import GAS_MONEY, derived_address
from .anvil import BLOCK_TIME
from .artifacts import Artifact
from .errors import DevnetError
from .market import Market
from .paths import devnet_dir, load_description, node_modules, package_version, write_json
from .rpc import Rpc
from .txs import CREATE_GAS, Chain, Tx

PACKAGE = "@uniswap/v2-core"
PACKAGE_VERSION = "1.0.1"  # package.json pins it exactly
DEX_DEPLOYER = derived_address("dex-deployer")  # deploys, owns the liquidity; its own nonce keeps the factory fixed
ARBITRAGEUR = derived_address("dex-arbitrageur")  # sends the simulator's arbitrage swaps
DEFAULT_DEPTH_USD = 2_000_000  # per side of each pair
# Stablecoin pairs 10x deeper: Base's USDC/stablecoin pools hold tens of millions, and a constant-product pool is
# the worst case for two pegged assets (measured in `liq arena`: at $2M, hundreds of stablecoin borrowers crossing
# in one block drained the DAI/USDC pair below any liquidation's bonus).
STABLE_DEPTH_USD = 20_000_000
STABLECOINS = frozenset({"USDC", "DAI", "USDBC", "USDT", "GHO", "EURC"})
USD_UNIT = 10**8  # AaveOracle prices: USD with 8 decimals


@cache
def artifact(name: str) -> Artifact:
    """UniswapV2Factory / UniswapV2Pair (ABI, creation code) from the package's build/ (no libraries)."""
    path = node_modules() / PACKAGE / "build" / f"{name}.json"
    if not path.is_file():
        raise DevnetError(f"{path} not found: run `make setup` (npm {PACKAGE} {PACKAGE_VERSION})")
    raw = json.loads(path.read_text())
    return Artifact(name=name, abi=raw["abi"], bytecode="0x" + raw["bytecode"].removeprefix("0x"), link_references={})


@cache
def pair_init_code_hash() -> bytes:
    """keccak of the pair's creation code: the factory creates pairs with CREATE2 over it."""
    return keccak(bytes.fromhex(artifact("UniswapV2Pair").bytecode.removeprefix("0x")))


def sort_tokens(token_a: str, token_b: str) -> tuple[str, str]:
    """(token0, token1) as the factory orders them: by address."""
    a, b = to_checksum_address(token_a), to_checksum_address(token_b)
    return (a, b) if int(a, 16) < int(b, 16) else (b, a)


def pair_address(factory: str, token_a: str, token_b: str) -> str:
    """The pair's CREATE2 address: keccak(0xff ++ factory ++ keccak(token0 ++ token1) ++ init code hash)[12:]."""
    token0, token1 = sort_tokens(token_a, token_b)
    salt = keccak(bytes.fromhex(token0[2:] + token1[2:]))
    raw = keccak(b"\xff" + bytes.fromhex(factory[2:]) + salt + pair_init_code_hash())
    return to_checksum_address(raw[12:])


@dataclass(frozen=True)
class PairInfo:
    pair: str
    token0: str
    token1: str
    symbol0: str
    symbol1: str
    decimals0: int
    decimals1: int


@dataclass(frozen=True)
class Dex:
    """What `deploy_dex` made; `dex.json` next to `market.json` holds it."""

    factory: str
    deployer: str
    oracle: str  # the AaveOracle whose prices the pools follow
    block_deployed: int
    depth_usd: int  # USD per side of each pair at deployment
    package_version: str
    pairs: tuple[PairInfo, ...]

    @property
    def by_tokens(self) -> dict[tuple[str, str], PairInfo]:
        """Both orders of (tokenA, tokenB), checksummed addresses."""
        table = {}
        for p in self.pairs:
            table[(p.token0, p.token1)] = table[(p.token1, p.token0)] = p
        return table

    def pair(self, token_a: str, token_b: str) -> PairInfo:
        key = (to_checksum_address(token_a), to_checksum_address(token_b))
        if key not in self.by_tokens:
            raise DevnetError(f"no pair for {token_a} / {token_b} on the devnet DEX")
        return self.by_tokens[key]

    def pair_of(self, symbol_a: str, symbol_b: str) -> PairInfo:
        for p in self.pairs:
            if {p.symbol0.lower(), p.symbol1.lower()} == {symbol_a.lower(), symbol_b.lower()}:
                return p
        raise DevnetError(f"no pair for {symbol_a} / {symbol_b} on the devnet DEX")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Dex:
        return cls(**(dict(raw) | {"pairs": tuple(PairInfo(**p) for p in raw["pairs"])}))

    def save(self, path: Path) -> Path:
        return write_json(path, self.to_json())


def dex_json_path(data_dir: Path | str) -> Path:
    return devnet_dir(data_dir) / "dex.json"


def load_dex(data_dir_or_file: Path | str) -> Dex:
    """From a dex.json file, or from <DATA_DIR>/devnet/dex.json given the data dir."""
    missing = "deploy one with devnet.dex.deploy_dex"
    return load_description(data_dir_or_file, dex_json_path, Dex.from_json, "DEX description", missing)


# --- reads ---------------------------------------------------------------------------------------------------


def oracle_prices_of(rpc: Rpc, oracle: str, tokens: Sequence[str], block: int | str = "latest") -> dict[str, int]:
    """AaveOracle.getAssetsPrices, by checksummed token address (8-decimal USD)."""
    tag = hex(block) if isinstance(block, int) else block
    answer = rpc.call("eth_call", {"to": oracle, "data": call_data("getAssetsPrices(address[])", list(tokens))}, tag)
    (prices,) = decode_result(["uint256[]"], answer)
    return {to_checksum_address(t): int(p) for t, p in zip(tokens, prices, strict=True)}


def read_reserves(rpc: Rpc, dex: Dex, block: int | str = "latest") -> dict[str, tuple[int, int]]:
    """getReserves of every pair, one batch: pair -> (reserve0, reserve1)."""
    tag = hex(block) if isinstance(block, int) else block
    data = call_data("getReserves()")
    answers = rpc.batch([("eth_call", [{"to": p.pair, "data": data}, tag]) for p in dex.pairs])
    out = {}
    for p, answer in zip(dex.pairs, answers, strict=True):
        r0, r1, _ = decode_result(["uint112", "uint112", "uint32"], answer)
        out[p.pair] = (int(r0), int(r1))
    return out


def _prices_by_token(dex: Dex, prices: Mapping[str, int]) -> dict[str, int]:
    """Prices keyed by symbol (as actions.oracle_prices gives them) or by token address -> by token address."""
    symbols = {p.symbol0: p.token0 for p in dex.pairs} | {p.symbol1: p.token1 for p in dex.pairs}
    by_token = {to_checksum_address(k): int(v) for k, v in prices.items() if is_address(k)}
    return by_token | {symbols[k]: int(v) for k, v in prices.items() if k in symbols}  # other symbols: no pair


def _ratio(p: PairInfo, by_token: Mapping[str, int]) -> tuple[int, int]:
    try:
        return price_ratio(by_token[p.token0], p.decimals0, by_token[p.token1], p.decimals1)
    except KeyError as missing:
        raise DevnetError(f"no price for {missing} (pair {p.symbol0}/{p.symbol1})") from None


# --- deployment ----------------------------------------------------------------------------------------------


def liquidity_amounts(p: PairInfo, price0: int, price1: int, depth_usd: int) -> tuple[int, int]:
    """Each side worth depth_usd at these prices. The side with fewer raw units per dollar is floored from the
    depth; the other is matched to it (rounded half up), so the pool's price is the oracle's to half a raw unit
    of the finer token."""
    num, den = price_ratio(price0, p.decimals0, price1, p.decimals1)
    amount0 = depth_usd * USD_UNIT * 10**p.decimals0 // price0
    amount1 = depth_usd * USD_UNIT * 10**p.decimals1 // price1
    if amount0 <= amount1:
        amount1 = matching_amount(amount0, num, den)
    else:
        amount0 = matching_amount(amount1, den, num)
    if min(amount0, amount1) <= 1000 or max(amount0, amount1) > MAX_RESERVE:  # 1000: the pair's MINIMUM_LIQUIDITY
        raise DevnetError(f"depth ${depth_usd:,} gives {p.symbol0}/{p.symbol1} reserves the pair cannot hold")
    return amount0, amount1


def deploy_dex(
    rpc: Rpc,
    market: Market,
    *,
    depth_usd: int = DEFAULT_DEPTH_USD,
    stable_depth_usd: int = STABLE_DEPTH_USD,
    symbols: Sequence[str] | None = None,
    data_dir: Path | str | None = None,
) -> Dex:
    """Factory, one pair per two reserves (of `symbols`, default all), liquidity at the AaveOracle's prices, all
    from DEX_DEPLOYER in one mined block: `depth_usd` a side, `stable_depth_usd` for two stablecoins. Saves
    dex.json under data_dir when given."""
    if package_version(PACKAGE) != PACKAGE_VERSION:
        raise DevnetError(f"npm {PACKAGE} {package_version(PACKAGE)} is installed, {PACKAGE_VERSION} expected")
    reserves = [r for r in market.reserves if symbols is None or r.symbol in set(symbols)]
    if len(reserves) < 2:
        raise DevnetError("a DEX needs at least two reserves")
    chain = Chain(rpc)
    chain.set_balances([DEX_DEPLOYER, ARBITRAGEUR], GAS_MONEY)
    chain.nonces.prefetch([DEX_DEPLOYER])
    factory = create_address(DEX_DEPLOYER, chain.nonces.known[DEX_DEPLOYER.lower()])
    prices = oracle_prices_of(rpc, market.oracle, [r.asset for r in reserves])

    pairs = []
    for a, b in combinations(reserves, 2):
        first, second = sorted((a, b), key=lambda r: int(r.asset, 16))  # the factory's token0, token1
        pairs.append(
            PairInfo(
                pair=pair_address(factory, a.asset, b.asset),
                token0=to_checksum_address(first.asset),
                token1=to_checksum_address(second.asset),
                symbol0=first.symbol,
                symbol1=second.symbol,
                decimals0=first.decimals,
                decimals1=second.decimals,
            )
        )
    factory_code = constructor_data(artifact("UniswapV2Factory").bytecode, ["address"], [DEX_DEPLOYER])
    txs = [Tx(DEX_DEPLOYER, None, factory_code, gas=CREATE_GAS, label="deploy UniswapV2Factory")]
    for p in pairs:
        data = call_data("createPair(address,address)", p.token0, p.token1)
        txs.append(Tx(DEX_DEPLOYER, factory, data, gas=CREATE_GAS, label=f"createPair {p.symbol0}/{p.symbol1}"))
    for p in pairs:
        stable = {p.symbol0.upper(), p.symbol1.upper()} <= STABLECOINS
        amounts = liquidity_amounts(p, prices[p.token0], prices[p.token1], stable_depth_usd if stable else depth_usd)
        for token, amount, symbol in zip((p.token0, p.token1), amounts, (p.symbol0, p.symbol1), strict=True):
            data = call_data("mint(address,uint256)", p.pair, amount)
            txs.append(Tx(DEX_DEPLOYER, token, data, label=f"mint {symbol} to pair"))
        mint = call_data("mint(address)", DEX_DEPLOYER)
        txs.append(Tx(DEX_DEPLOYER, p.pair, mint, label=f"add liquidity {p.symbol0}/{p.symbol1}"))
    with chain.manual_mining():
        executed = chain.execute(txs, timestamp=chain.latest_timestamp() + BLOCK_TIME)

    dex = Dex(
        factory=factory,
        deployer=DEX_DEPLOYER,
        oracle=to_checksum_address(market.oracle),
        block_deployed=executed.block,
        depth_usd=depth_usd,
        package_version=PACKAGE_VERSION,
        pairs=tuple(pairs),
    )
    _check_pairs(rpc, dex)
    if data_dir is not None:
        dex.save(dex_json_path(data_dir))
    return dex


def find_dex(rpc: Rpc, market: Market) -> Dex | None:
    """The DEX on the chain behind `rpc` without its dex.json: the factory DEX_DEPLOYER created first (nonce 0,
    as deploy_dex does on a fresh chain) and its pairs of the market's reserves. None when there is no factory
    (a chain from before the DEX). `depth_usd` is 0 (not on chain) and `block_deployed` the first PairCreated's."""
    factory = create_address(DEX_DEPLOYER, 0)
    if rpc.call("eth_getCode", factory, "latest") in ("0x", ""):
        return None
    # deploy_dex's order: pairs of reserves in the market's order, (token0, token1) in the factory's
    candidates = [tuple(sorted(two, key=lambda r: int(r.asset, 16))) for two in combinations(market.reserves, 2)]
    answers = rpc.batch(
        [
            ("eth_call", [{"to": factory, "data": call_data("getPair(address,address)", a.asset, b.asset)}, "latest"])
            for a, b in candidates
        ]
    )
    pairs = []
    for (a, b), answer in zip(candidates, answers, strict=True):
        (found,) = decode_result(["address"], answer)
        if int(found, 16):
            pairs.append(
                PairInfo(
                    to_checksum_address(found),
                    to_checksum_address(a.asset),
                    to_checksum_address(b.asset),
                    a.symbol,
                    b.symbol,
                    a.decimals,
                    b.decimals,
                )
            )
    logs = rpc.call("eth_getLogs", {"address": factory, "fromBlock": "0x0", "toBlock": "latest"})
    return Dex(
        factory=factory,
        deployer=DEX_DEPLOYER,
        oracle=to_checksum_address(market.oracle),
        block_deployed=int(logs[0]["blockNumber"], 16) if logs else 0,
        depth_usd=0,
        package_version=PACKAGE_VERSION,
        pairs=tuple(pairs),
    )


def _check_pairs(rpc: Rpc, dex: Dex) -> None:
    """The factory's getPair must be the predicted CREATE2 address (else another build of the pair is installed)."""
    calls = [call_data("getPair(address,address)", p.token0, p.token1) for p in dex.pairs]
    answers = rpc.batch([("eth_call", [{"to": dex.factory, "data": c}, "latest"]) for c in calls])
    for p, answer in zip(dex.pairs, answers, strict=True):
        (found,) = decode_result(["address"], answer)
        if to_checksum_address(found) != p.pair:
            raise DevnetError(f"pair {p.symbol0}/{p.symbol1} is at {found}, {p.pair} predicted")


# --- arbitrage -----------------------------------------------------------------------------------------------


def arbitrage_swaps(
    dex: Dex, reserves: Mapping[str, tuple[int, int]], prices: Mapping[str, int]
) -> dict[str, tuple[PairInfo, Swap]]:
    """Per pair off its price, the swap (risk/amm.py, exact) that brings it to `prices` (symbol or token ->
    8-decimal USD). Pure: the caller read `reserves` (read_reserves) at the state the swaps will run on."""
    by_token = _prices_by_token(dex, prices)
    swaps = {}
    for p in dex.pairs:
        r0, r1 = reserves[p.pair]
        swap = swap_to_price(r0, r1, *_ratio(p, by_token))
        if swap is not None:
            swaps[p.pair] = (p, swap)
    return swaps


def swap_txs(p: PairInfo, swap: Swap, sender: str = ARBITRAGEUR) -> list[Tx]:
    """Mint the input straight to the pair, then `swap` for exactly the output (to `sender`)."""
    token_in = p.token0 if swap.zero_for_one else p.token1
    label = f"arbitrage {p.symbol0}/{p.symbol1}"
    return [
        Tx(sender, token_in, call_data("mint(address,uint256)", p.pair, swap.amount_in), label=f"{label} mint"),
        Tx(
            sender,
            p.pair,
            call_data("swap(uint256,uint256,address,bytes)", swap.amount0_out, swap.amount1_out, sender, b""),
            label=f"{label} swap",
        ),
    ]


@dataclass(frozen=True)
class Arbitrage:
    block: int | None  # None: every pool was already at its price, nothing sent
    swaps: dict[str, Swap]  # by pair address


def arbitrage(rpc: Rpc, dex: Dex, prices: Mapping[str, int] | None = None) -> Arbitrage:
    """Swaps that move every pair back to `prices` (default: the AaveOracle's now), in one mined block.

    The swaps are computed from the reserves read just before: nothing else may swap on these pairs in the
    same block (to share a block with other transactions, send `arbitrage_swaps` + `swap_txs` yourself).
    """
    if prices is None:
        tokens = sorted({t for p in dex.pairs for t in (p.token0, p.token1)})
        prices = oracle_prices_of(rpc, dex.oracle, tokens)
    swaps = arbitrage_swaps(dex, read_reserves(rpc, dex), prices)
    if not swaps:
        return Arbitrage(None, {})
    chain = Chain(rpc)
    txs = [tx for p, swap in swaps.values() for tx in swap_txs(p, swap)]
    with chain.manual_mining():
        executed = chain.execute(txs, timestamp=chain.latest_timestamp() + BLOCK_TIME)
    return Arbitrage(executed.block, {pair: swap for pair, (_, swap) in swaps.items()})
