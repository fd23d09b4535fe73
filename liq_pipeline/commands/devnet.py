"""`liq devnet ...`: the local Aave V3 devnet from the command line.

Thin commands over the library: settings from the root app's context (or load_settings()), one clear line on
stderr and exit code 2 for a user mistake (devnet not running, port busy, node_modules missing), never a
traceback. Nodes bind to 127.0.0.1 only. Nothing here prints a key: the devnet has none to print.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(
    name="devnet",
    help="Local devnet: anvil running the real Aave V3 contracts (@aave/core-v3 1.19.3, V3.0 rounding).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console(soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def user_errors(func: F) -> F:
    """DevnetError (and a bad setting) -> one line on stderr, exit 2; a node refusing a call -> exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..devnet.errors import DevnetError
        from ..devnet.rpc import RpcError

        try:
            return func(*args, **kwargs)
        except DevnetError as error:
            raise _fail(str(error)) from None
        except RpcError as error:
            raise _fail(f"the node refused a call: {error}", code=1) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", code=130) from None

    return wrapper  # type: ignore[return-value]


def _data_dir(ctx: typer.Context) -> Path:
    from liq_pipeline.config import Settings, SettingsError, load_settings

    settings = ctx.obj if isinstance(ctx.obj, Settings) else None
    if settings is None:
        try:
            settings = load_settings()
        except SettingsError as error:
            for line in str(error).splitlines():
                err.print(f"[bold red]config error:[/] {line}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
    return Path(settings.data_dir)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


@app.command()
@user_errors
def up(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 8545,
    borrowers: Annotated[int, typer.Option(min=0, help="Borrowers to seed.")] = 0,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the borrowers' portfolios.")] = 0,
    cache: Annotated[bool, typer.Option(help="Load a cached deployed+seeded state (built on first use).")] = True,
    prune_history: Annotated[bool, typer.Option(help="Keep memory flat; old-block state reads fail.")] = False,
) -> None:
    """Start anvil on 127.0.0.1, deploy the Aave V3 market (or load it from the state cache), write market.json."""
    from ..devnet import lifecycle

    data_dir = _data_dir(ctx)
    lifecycle.preflight(data_dir, port)  # before the progress bar: a mistake is one clean line
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
        )
    origin = (
        "fresh deployment"
        if not result.from_cache
        else ("state cache, built now" if result.cache_built else "state cache")
    )
    out.print(
        f"devnet up at {result.node.url} (pid {result.node.pid}, chain id {result.market.chain_id})", highlight=False
    )
    out.print(f"market: {result.market_path}  pool {result.market.pool}", highlight=False)
    out.print(f"borrowers: {result.borrowers} (seed {seed}), from {origin}, in {result.seconds:.1f} s", highlight=False)
    out.print("stop it with `liq devnet down`", highlight=False)


@app.command()
@user_errors
def down(ctx: typer.Context) -> None:
    """Stop the devnet started by `liq devnet up` (by the PID in its pid file)."""
    from ..devnet import lifecycle
    from ..devnet.errors import DevnetError

    node = lifecycle.down(_data_dir(ctx))
    if node is None:
        raise DevnetError("no devnet is running (no live pid file in the data dir)")
    out.print(f"devnet at {node.url} stopped (pid {node.pid})", highlight=False)


@app.command()
@user_errors
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Where the running devnet is, its latest block, and how many borrowers were seeded."""
    from ..devnet import lifecycle
    from ..devnet.borrowers import BorrowerRecord
    from ..devnet.paths import borrowers_json_path

    data_dir = _data_dir(ctx)
    rpc, market = lifecycle.attach(data_dir)
    with rpc:
        block = rpc.call("eth_getBlockByNumber", "latest", False)
    info = {
        "rpc_url": rpc.url,
        "chain_id": market.chain_id,
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
        out.print(f"{key:>18}  {value}", highlight=False)


@app.command("seed")
@user_errors
def seed_command(
    ctx: typer.Context,
    borrowers: Annotated[int, typer.Option(min=1, help="Borrowers to create.")],
    seed: Annotated[int, typer.Option(min=0, help="Seed of the portfolios.")] = 0,
) -> None:
    """Create borrowers on the running devnet (new addresses each time; recorded in borrowers.json)."""
    from ..devnet import lifecycle
    from ..devnet.borrowers import BorrowerRecord
    from ..devnet.paths import borrowers_json_path
    from ..devnet.seed import seed as seed_borrowers

    data_dir = _data_dir(ctx)
    rpc, market = lifecycle.attach(data_dir)
    record = BorrowerRecord.load(borrowers_json_path(data_dir))
    start = record.next_index(seed)
    with rpc, _progress() as progress:
        task = progress.add_task("seeding", total=borrowers)
        result = seed_borrowers(
            rpc, market, borrowers, seed, start_index=start, progress=lambda k: progress.advance(task, k)
        )
    record.add(seed, start, result.users, result.blocks[1])
    record.save(borrowers_json_path(data_dir))
    out.print(
        f"{len(result.users)} borrowers in {result.seconds:.2f} s ({result.per_second:.0f}/s, {result.transactions} "
        f"transactions, blocks {result.blocks[0]}-{result.blocks[1]}); {len(record.users)} recorded",
        highlight=False,
    )


@app.command()
@user_errors
def simulate(
    ctx: typer.Context,
    blocks: Annotated[int, typer.Option(min=1, help="Blocks to simulate.")],
    block_time: Annotated[int, typer.Option(min=1, help="Seconds between blocks (Base: 2).")] = 2,
    liquidation_delay: Annotated[int, typer.Option(min=1, help="Blocks before the competitor liquidates.")] = 3,
    seed: Annotated[int, typer.Option(min=0, help="Seed of prices and activity.")] = 0,
    vol_scale: Annotated[float, typer.Option(min=0.0, help="Multiplier of the assets' annual volatility.")] = 10.0,
    shock_probability: Annotated[float, typer.Option(min=0.0, max=1.0, help="Chance of a shock per block.")] = 0.004,
    arrivals: Annotated[float, typer.Option(min=0.0, help="Mean new borrowers per block.")] = 0.5,
    realtime: Annotated[bool, typer.Option(help="Pace blocks on the wall clock: one every --block-time s.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Run a living market on the devnet: price walk and shocks, interest, arrivals, repays, a competitor."""
    import time

    from ..devnet import lifecycle
    from ..devnet.borrowers import BorrowerRecord
    from ..devnet.paths import borrowers_json_path
    from ..devnet.simulate import SimConfig
    from ..devnet.simulate import simulate as run

    data_dir = _data_dir(ctx)
    rpc, market = lifecycle.attach(data_dir)
    record = BorrowerRecord.load(borrowers_json_path(data_dir))
    config = SimConfig(
        blocks=blocks,
        block_time=block_time,
        liquidation_delay=liquidation_delay,
        seed=seed,
        vol_scale=vol_scale,
        shock_probability=shock_probability,
        arrivals_per_block=arrivals,
    )
    first = record.next_index(seed, "arrival")
    with rpc, _progress() as progress:
        task = progress.add_task("simulating", total=blocks)

        started = time.monotonic()

        def tick(index: int, partial: Any) -> None:
            progress.update(task, advance=1, description=f"simulating ({partial.liquidations} liquidations)")
            if realtime:  # like a live chain: the next block only when its time has come
                time.sleep(max(0.0, started + index * block_time - time.monotonic()))

        result = run(rpc, market, config, record.users, first_arrival_index=first, on_block=tick)
    record.add(seed, first, result.new_users, result.blocks[1], namespace="arrival")
    record.save(borrowers_json_path(data_dir))
    summary = {k: v for k, v in vars(result).items() if k != "new_users"} | {"new_users": len(result.new_users)}
    if as_json:
        print(json.dumps(summary))
        return
    for key, value in summary.items():
        out.print(f"{key:>24}  {value}", highlight=False)


@app.command()
@user_errors
def price(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="Reserve symbol, e.g. WETH.")],
    usd: Annotated[float, typer.Argument(min=0.0, help="New price in USD.")],
) -> None:
    """Set a price feed's answer (emits AnswerUpdated; AaveOracle follows)."""
    from ..devnet import lifecycle
    from ..devnet.actions import set_price
    from ..devnet.errors import DevnetError

    rpc, market = lifecycle.attach(_data_dir(ctx))
    key = symbol.upper()
    if key not in market.by_symbol:
        raise DevnetError(f"unknown reserve {symbol!r}: expected one of {', '.join(market.by_symbol)}")
    with rpc:
        done = set_price(rpc, market, key, round(usd * 10**8))
    out.print(f"{key} = {usd} USD from block {done.block}", highlight=False)


@app.command()
@user_errors
def advance(
    ctx: typer.Context,
    seconds: Annotated[int, typer.Argument(min=1, help="Seconds to jump forward (one block).")],
) -> None:
    """Mine one block `seconds` later: interest accrues over the gap."""
    from ..devnet import lifecycle
    from ..devnet.actions import advance_time

    rpc, _ = lifecycle.attach(_data_dir(ctx))
    with rpc:
        timestamp = advance_time(rpc, seconds)
    out.print(f"latest block timestamp {timestamp}", highlight=False)


@app.command()
@user_errors
def verify(
    ctx: typer.Context,
    borrowers: Annotated[int, typer.Option(min=1, help="Borrowers to seed and compare.")] = 2_000,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the borrowers' portfolios.")] = 0,
    shock: Annotated[float, typer.Option(min=0.0, max=0.9, help="Fall of non-stable prices before comparing.")] = 0.12,
    running: Annotated[bool, typer.Option(help="Use the running devnet instead of a fresh one.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Seed N borrowers, shock prices, compare the engine's HF with getUserAccountData for every borrower."""
    from liq_pipeline.chain.discovery import ReaderError
    from liq_pipeline.chain.rpc import NodeUnavailable
    from liq_pipeline.commands.verify import run_verify

    data_dir = _data_dir(ctx)
    try:
        if as_json:
            result = run_verify(data_dir, borrowers, seed, shock, use_running=running)
        else:
            with err.status("verifying") as status:
                result = run_verify(data_dir, borrowers, seed, shock, use_running=running, progress=status.update)
    except (ReaderError, NodeUnavailable) as error:
        raise _fail(str(error)) from None
    if as_json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        out.print(f"{key:>24}  {value}", highlight=False)
    if result["flips"]:
        raise typer.Exit(1)
