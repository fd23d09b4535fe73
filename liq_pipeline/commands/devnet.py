"""`liq devnet ...`: the local Aave V3 devnet's commands, options and help; the work is in `devnet_ops` (and
`verify`), imported when a command runs (see cli.py for the start-up figure).

Nodes bind to 127.0.0.1 only. A mistake (devnet not running, port busy, node_modules missing) is one line on
stderr and exit code 2; a call the node refuses, exit code 3 (commands/runtime.py lists the codes).
"""

from __future__ import annotations

from typing import Annotated

import typer

from .base import new_app

app = new_app(
    "devnet",
    "A local anvil running the real Aave V3 contracts.\n\nAn L2Pool from @aave-dao/aave-v3-origin 3.6.0 by default"
    " (the closest to Base); --protocol 3.0 (or DEVNET_PROTOCOL_VERSION=3.0): @aave/core-v3 1.19.3.",
)
PROTOCOL_HELP = "Aave market: 3.6 or 3.0 (default: DEVNET_PROTOCOL_VERSION, 3.6)."


@app.command()
def up(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 8545,
    borrowers: Annotated[int, typer.Option(min=0, help="Borrowers to seed.")] = 0,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the borrowers' portfolios.")] = 0,
    cache: Annotated[bool, typer.Option(help="Load a cached deployed+seeded state (built on first use).")] = True,
    prune_history: Annotated[bool, typer.Option(help="Keep memory flat; old-block state reads fail.")] = False,
    protocol: Annotated[str | None, typer.Option(help=PROTOCOL_HELP)] = None,
) -> None:
    """Start anvil with the Aave V3 market; write market.json.

    On 127.0.0.1; the market is loaded from the state cache (built on first use) or deployed fresh (--no-cache).
    """
    from . import devnet_ops

    devnet_ops.up(port, borrowers, seed, cache, prune_history, protocol)


@app.command()
def down() -> None:
    """Stop the devnet started by `liq devnet up` (by its pid file)."""
    from . import devnet_ops

    devnet_ops.down()


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Where the running devnet is, its block, its borrowers."""
    from . import devnet_ops

    devnet_ops.status(as_json)


@app.command("seed")
def seed_command(
    borrowers: Annotated[int, typer.Option(min=1, help="Borrowers to create.")],
    seed: Annotated[int, typer.Option(min=0, help="Seed of the portfolios.")] = 0,
) -> None:
    """Create borrowers on the running devnet.

    New addresses each time; recorded in borrowers.json.
    """
    from . import devnet_ops

    devnet_ops.seed(borrowers, seed)


@app.command()
def simulate(
    blocks: Annotated[int, typer.Option(min=1, help="Blocks to simulate.")],
    block_time: Annotated[int, typer.Option(min=1, help="Seconds between blocks (Base: 2).")] = 2,
    liquidation_delay: Annotated[int, typer.Option(min=1, help="Blocks before the competitor liquidates.")] = 3,
    seed: Annotated[int, typer.Option(min=0, help="Seed of prices and activity.")] = 0,
    vol_scale: Annotated[float, typer.Option(min=0.0, help="Multiplier of the assets' annual volatility.")] = 10.0,
    shock_probability: Annotated[float, typer.Option(min=0.0, max=1.0, help="Chance of a shock per block.")] = 0.004,
    arrivals: Annotated[float, typer.Option(min=0.0, help="Mean new borrowers per block.")] = 0.5,
    realtime: Annotated[bool, typer.Option(help="Pace blocks on the wall clock: one every --block-time s.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    pending_window_ms: Annotated[
        int,
        typer.Option(
            min=0,
            help="A block's price updates wait in the pool this long, ahead of everything, before it is sealed "
            "(a Base Flashblock: 200); 0: each block sent and mined at once.",
        ),
    ] = 0,
    competitor: Annotated[
        str,
        typer.Option(help="sealed (reacts to sealed blocks), preconf or svr (both need --pending-window-ms)."),
    ] = "sealed",
) -> None:
    """Run a living market on the devnet.

    Price walk and shocks, interest, arrivals, repays, a competitor liquidating.
    """
    from . import devnet_ops

    pace = {"pending_window_ms": pending_window_ms, "competitor": competitor}
    devnet_ops.simulate(
        blocks, block_time, liquidation_delay, seed, vol_scale, shock_probability, arrivals, realtime, as_json, pace
    )


@app.command()
def price(
    symbol: Annotated[str, typer.Argument(help="Reserve symbol, e.g. WETH.")],
    usd: Annotated[float, typer.Argument(min=0.0, help="New price in USD.")],
) -> None:
    """Set a price feed's answer (AaveOracle follows).

    Emits AnswerUpdated, like a Chainlink feed.
    """
    from . import devnet_ops

    devnet_ops.price(symbol, usd)


@app.command()
def advance(seconds: Annotated[int, typer.Argument(min=1, help="Seconds to jump forward (one block).")]) -> None:
    """Mine one block `seconds` later: interest accrues over the gap."""
    from . import devnet_ops

    devnet_ops.advance(seconds)


@app.command()
def verify(
    borrowers: Annotated[int, typer.Option(min=1, help="Borrowers to seed and compare.")] = 2_000,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the borrowers' portfolios.")] = 0,
    shock: Annotated[float, typer.Option(min=0.0, max=0.9, help="Fall of non-stable prices before comparing.")] = 0.12,
    running: Annotated[bool, typer.Option(help="Use the running devnet instead of a fresh one.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    protocol: Annotated[str | None, typer.Option(help=PROTOCOL_HELP + " Not with --running.")] = None,
) -> None:
    """The engine's HF against getUserAccountData, every borrower.

    Seeds N borrowers, moves prices down, compares. Exit code 1 when a decision (HF < 1 or not) differs from
    the contract's.
    """
    from . import verify as command

    raise typer.Exit(command.main(borrowers, seed, shock, running, as_json, protocol))


@app.command("verify-liquidations")
def verify_liquidations(
    liquidations: Annotated[int, typer.Option(min=1, help="Real liquidations to predict, send and compare.")] = 300,
    borrowers: Annotated[int, typer.Option(min=1, help="Borrowers of the fresh devnet.")] = 1_000,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the borrowers' portfolios.")] = 0,
    running: Annotated[bool, typer.Option(help="Use the running devnet instead of a fresh one.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    protocol: Annotated[str | None, typer.Option(help=PROTOCOL_HELP + " Not with --running.")] = None,
) -> None:
    """Predicted liquidations against the Pool, exactly.

    Shocks prices, then sends liquidations (varied pairs, amounts, receiveAToken), each predicted from the block
    before; compares event amounts, balances, flags, deficits and revert errors. Exit code 1 on any mismatch or
    when fewer than --liquidations were made.
    """
    from . import verify_liquidations as command

    raise typer.Exit(command.main(liquidations, borrowers, seed, running, as_json, protocol))
