"""The work of `liq devnet up|down|status|seed|simulate|price|advance` (options and help: devnet.py)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..devnet import lifecycle, protocols
from ..devnet.actions import advance_time, set_price
from ..devnet.borrowers import BorrowerRecord
from ..devnet.errors import DevnetError
from ..devnet.paths import borrowers_json_path
from ..devnet.simulate import SimConfig
from ..devnet.simulate import simulate as run_simulation
from . import runtime

err = Console(stderr=True)
out = Console(soft_wrap=True, highlight=False)


def _data_dir() -> Path:
    return Path(runtime.settings().data_dir)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def devnet_protocol(option: str | None) -> str:
    """--protocol, else DEVNET_PROTOCOL_VERSION (validated by the settings), checked: DevnetError when unknown."""
    return protocols.check_protocol(option if option is not None else runtime.settings().devnet_protocol_version)


def up(port: int, borrowers: int, seed: int, cache: bool, prune_history: bool, protocol: str | None = None) -> None:
    data_dir = _data_dir()
    version = devnet_protocol(protocol)
    lifecycle.preflight(data_dir, port, version)  # before the progress bar: a mistake is one clean line
    with _progress() as progress:
        task = progress.add_task("building market state", total=max(borrowers, 1))

        def report(stage: str, count: int) -> None:
            progress.update(task, advance=count or 0, description=stage)

        result = lifecycle.up(
            data_dir,
            port=port,
            borrowers=borrowers,
            seed=seed,
            use_cache=cache,
            prune_history=prune_history,
            progress=report,
            protocol=version,
        )
    origin = (
        "fresh deployment"
        if not result.from_cache
        else ("state cache, built now" if result.cache_built else "state cache")
    )
    out.print(
        f"devnet up at {result.node.url} (pid {result.node.pid}, chain id {result.market.chain_id}, "
        f"Aave V{result.market.protocol_version})"
    )
    out.print(f"market: {result.market_path}  pool {result.market.pool}")
    out.print(f"borrowers: {result.borrowers} (seed {seed}), from {origin}, in {result.seconds:.1f} s")
    out.print("stop it with `liq devnet down`")


def down() -> None:
    node = lifecycle.down(_data_dir())
    if node is None:
        raise DevnetError("no devnet is running (no live pid file in the data dir)")
    out.print(f"devnet at {node.url} stopped (pid {node.pid})")


def status(as_json: bool) -> None:
    data_dir = _data_dir()
    rpc, market = lifecycle.attach(data_dir)
    with rpc:
        block = rpc.call("eth_getBlockByNumber", "latest", False)
    info = {
        "rpc_url": rpc.url,
        "chain_id": market.chain_id,
        "protocol_version": market.protocol_version,
        "block": int(block["number"], 16),
        "timestamp": int(block["timestamp"], 16),
        "pool": market.pool,
        "addresses_provider": market.addresses_provider,
        "reserves": [r.symbol for r in market.reserves],
        "borrowers": len(BorrowerRecord.load(borrowers_json_path(data_dir)).users),
    }
    if as_json:
        print(json.dumps(info))
        return
    for key, value in info.items():
        out.print(f"{key:>18}  {value}")


def seed(borrowers: int, seed: int) -> None:
    data_dir = _data_dir()
    rpc, market = lifecycle.attach(data_dir)
    record = BorrowerRecord.load(borrowers_json_path(data_dir))
    start = record.next_index(seed)
    with rpc, _progress() as progress:
        task = progress.add_task("seeding", total=borrowers)
        result = protocols.seeder(market)(
            rpc, market, borrowers, seed, start_index=start, progress=lambda k: progress.advance(task, k)
        )
    record.add(seed, start, result.users, result.blocks[1])
    record.save(borrowers_json_path(data_dir))
    out.print(
        f"{len(result.users)} borrowers in {result.seconds:.2f} s ({result.per_second:.0f}/s, {result.transactions} "
        f"transactions, blocks {result.blocks[0]}-{result.blocks[1]}); {len(record.users)} recorded"
    )


def simulate(
    blocks: int,
    block_time: int,
    liquidation_delay: int,
    seed: int,
    vol_scale: float,
    shock_probability: float,
    arrivals: float,
    realtime: bool,
    as_json: bool,
    pace: dict | None = None,
) -> None:
    try:  # one line naming the option (SimConfig says which value and what it expects)
        config = SimConfig(
            blocks=blocks,
            block_time=block_time,
            liquidation_delay=liquidation_delay,
            seed=seed,
            vol_scale=vol_scale,
            shock_probability=shock_probability,
            arrivals_per_block=arrivals,
            **(pace or {}),
        )
    except ValueError as error:  # SimConfig.pending_window_ms -> --pending-window-ms: the option the user gave
        text = re.sub(r"SimConfig\.(\w+)=", lambda m: "--" + m.group(1).replace("_", "-") + " ", str(error))
        raise DevnetError(text) from None
    data_dir = _data_dir()
    rpc, market = lifecycle.attach(data_dir)
    record = BorrowerRecord.load(borrowers_json_path(data_dir))
    first = record.next_index(seed, "arrival")
    with rpc, _progress() as progress:
        task = progress.add_task("simulating", total=blocks)
        started = time.monotonic()

        def tick(index: int, partial: Any) -> None:
            progress.update(task, advance=1, description=f"simulating ({partial.liquidations} liquidations)")
            if realtime:  # like a live chain: the next block only when its time has come
                time.sleep(max(0.0, started + index * block_time - time.monotonic()))

        result = run_simulation(rpc, market, config, record.users, first_arrival_index=first, on_block=tick)
    record.add(seed, first, result.new_users, result.blocks[1], namespace="arrival")
    record.save(borrowers_json_path(data_dir))
    summary = {k: v for k, v in vars(result).items() if k != "new_users"} | {"new_users": len(result.new_users)}
    if as_json:
        print(json.dumps(summary))
        return
    for key, value in summary.items():
        out.print(f"{key:>24}  {value}")


def price(symbol: str, usd: float) -> None:
    rpc, market = lifecycle.attach(_data_dir())
    key = next((s for s in market.by_symbol if s.upper() == symbol.upper()), symbol)  # wstETH, WETH, weth
    if key not in market.by_symbol:
        rpc.close()
        raise DevnetError(f"unknown reserve {symbol!r}: expected one of {', '.join(market.by_symbol)}")
    with rpc:
        done = set_price(rpc, market, key, round(usd * 10**8))
    out.print(f"{key} = {usd} USD from block {done.block}")


def advance(seconds: int) -> None:
    rpc, _ = lifecycle.attach(_data_dir())
    with rpc:
        timestamp = advance_time(rpc, seconds)
    out.print(f"latest block timestamp {timestamp}")
