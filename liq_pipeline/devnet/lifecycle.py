"""The devnet as a whole: bring it up (from the state cache or fresh), find the running one, take it down.

Files in <DATA_DIR>/devnet: anvil.json (pid file), anvil.log, market.json, borrowers.json, dex.json (the Uniswap
V2 DEX deployed after the borrowers: devnet/dex.py), cache/, build/, and v36.json when the market is the V3.6 one
(`protocol="3.6"`; market.json's protocol_version says which).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import anvil, protocols, state_cache
from .borrowers import BorrowerRecord
from .dex import deploy_dex, dex_json_path
from .errors import DevnetError
from .market import Market, load_market
from .multicall import install_multicall
from .paths import borrowers_json_path, devnet_dir, market_json_path
from .protocols import DEFAULT_PROTOCOL
from .rpc import Rpc


@dataclass
class UpResult:
    node: anvil.AnvilNode
    market: Market
    market_path: Path
    borrowers: int
    from_cache: bool
    cache_built: bool
    seconds: float


def up(
    data_dir: Path | str,
    *,
    port: int | None = None,
    borrowers: int = 0,
    seed: int = 0,
    use_cache: bool = True,
    prune_history: bool = False,
    progress: Callable[[str, int], None] | None = None,
    protocol: str = DEFAULT_PROTOCOL,
    cache_dir: Path | str | None = None,
) -> UpResult:
    """Start a detached devnet with a deployed (and optionally seeded) market; write market.json.

    protocol: "3.6" (the L2Pool market of devnet/v36, the default) or "3.0" (@aave/core-v3 1.19.3).
    cache_dir: the data dir whose state cache and compiled contracts to use (default `data_dir`): a throw-away
    devnet (`liq demo`) then neither recompiles nor reseeds."""
    cache_dir = data_dir if cache_dir is None else cache_dir
    started = time.perf_counter()
    protocol = protocols.check_protocol(protocol)
    preflight(data_dir, port, protocol)
    log_path = devnet_dir(data_dir) / "anvil.log"
    extras = devnet_dir(data_dir) / protocols.V36_EXTRAS
    extras.unlink(missing_ok=True)  # a V3.0 market after a V3.6 one must not leave its extras behind
    dex_json = dex_json_path(data_dir)
    dex_json.unlink(missing_ok=True)  # nor a DEX of another chain (a cache entry from before the DEX has none)
    built = False
    if use_cache:
        entry, built = state_cache.ensure(cache_dir, borrowers, seed, progress, protocol=protocol)
        node, market = state_cache.start_from(
            entry, port=port, detach=True, prune_history=prune_history, log_path=log_path
        )
        anvil.write_pid_file(data_dir, node)  # from here on `liq devnet down` can stop it
        shutil.copyfile(entry.borrowers_path, borrowers_json_path(data_dir))
        if entry.extras_path.is_file():
            shutil.copyfile(entry.extras_path, extras)
        if entry.dex_path.is_file():
            shutil.copyfile(entry.dex_path, dex_json)
    else:
        node = anvil.start(port, detach=True, prune_history=prune_history, log_path=log_path)
        anvil.write_pid_file(data_dir, node)
        try:
            with Rpc(node.url) as rpc:
                rpc.call("anvil_setBlockTimestampInterval", anvil.BLOCK_TIME)
                install_multicall(rpc, cache_dir)  # before the market: every block has it
                market, save_market = protocols.deploy(rpc, cache_dir, protocol)
                save_market(devnet_dir(data_dir))  # v36.json (market.json is written again below)
                record = BorrowerRecord()
                if borrowers:
                    result = protocols.seeder(market)(rpc, market, borrowers, seed)
                    record.add(seed, 0, result.users, result.blocks[1])
                record.save(borrowers_json_path(data_dir))
                deploy_dex(rpc, market).save(dex_json)  # as the state cache does: the DEX after the borrowers
        except BaseException:
            anvil.stop_recorded(data_dir)
            raise
    path = market.save(market_json_path(data_dir))
    return UpResult(node, market, path, borrowers, use_cache, built, time.perf_counter() - started)


def preflight(data_dir: Path | str, port: int | None, protocol: str = DEFAULT_PROTOCOL) -> None:
    """The mistakes `up` can report before doing anything: packages, a devnet already running, a busy port."""
    protocols.check_packages(protocols.check_protocol(protocol))
    anvil.anvil_binary()
    running = anvil.running_node(data_dir)
    if running is not None:
        raise DevnetError(f"a devnet already runs at {running.url} (pid {running.pid}): `liq devnet down` first")
    if port is not None and not anvil.port_is_free(port):
        raise DevnetError(f"port {port} on {anvil.HOST} is busy: stop what uses it or choose another --port")


def down(data_dir: Path | str) -> anvil.AnvilNode | None:
    """Stop the devnet recorded in the pid file. None when none was running."""
    return anvil.stop_recorded(data_dir)


def attach(data_dir: Path | str) -> tuple[Rpc, Market]:
    """The running devnet of this data dir: an RPC client and its market. DevnetError when none runs."""
    node = anvil.running_node(data_dir)
    if node is None:
        raise DevnetError(f"no devnet is running for data dir {Path(data_dir)}: start one with `liq devnet up`")
    market = load_market(market_json_path(data_dir))
    rpc = Rpc(node.url)
    try:
        chain_id = int(rpc.call("eth_chainId"), 16)
        code = rpc.call("eth_getCode", market.pool, "latest")
    except DevnetError:
        rpc.close()
        raise
    if chain_id != market.chain_id or code in ("0x", ""):
        rpc.close()
        raise DevnetError(f"the node at {node.url} does not hold the market of {market_json_path(data_dir)}")
    return rpc, market
