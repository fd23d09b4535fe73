"""The `liq` command: every command's options and help, and nothing else.

Each command runs its implementation module (`config_view`, `status`, `scan`, ...), imported when the command
runs: `liq --help` imports typer and this tree only and takes 0.08 s (median of 9 runs on the 2-core dev machine;
0.45 s when the settings and the commands' modules were imported up front). Settings are read when a command
runs, so a bad setting never breaks `--help`.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .. import __version__
from .backtest import command as backtest_command
from .base import new_app, usage_error
from .devnet import app as devnet_app

EXIT_CODES = """\b
Exit codes: 0 done; 1 done, outcome bad (status unhealthy, a failed range, a flip);
2 a mistake in an option or a setting, or nothing to connect to; 3 the node is
unreachable or answered an error; 130 interrupted.
RPC_URL and AAVE_ADDRESSES_PROVIDER both empty: the devnet running for DATA_DIR."""

app = new_app("liq", "liq-pipeline: find Aave V3 borrowers about to become liquidatable.", epilog=EXIT_CODES)
redis_app = new_app("redis", "The embedded Redis of DATA_DIR (when REDIS_URL is empty).")

Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _devnet_protocol(value: str | None) -> str | None:
    """--protocol of the commands that start their own devnet: 3.0 or 3.6 (a usage error otherwise)."""
    if value is None:
        return None
    from ..devnet.errors import DevnetError
    from ..devnet.protocols import check_protocol

    try:
        return check_protocol(value)
    except DevnetError as error:
        raise typer.BadParameter(str(error)) from None


class ArenaCompetitor(StrEnum):
    delayed = "delayed"
    same_block = "same-block"
    preconf = "preconf"
    svr = "svr"


class ArenaTrigger(StrEnum):
    sealed = "sealed"
    pending = "pending"


DevnetProtocol = Annotated[
    str | None,
    typer.Option(
        callback=_devnet_protocol,
        help="Aave version of the devnet it starts, 3.0 or 3.6 (default DEVNET_PROTOCOL_VERSION, 3.6); "
        "the engine's AAVE_PROTOCOL_VERSION follows it.",
    ),
]


def _print_version(value: bool) -> None:
    if value:
        print(f"liq {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """liq-pipeline: find Aave V3 borrowers about to become liquidatable."""


@app.command()
def config(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """The effective settings, as an env file (secrets masked)."""
    from . import config_view

    config_view.main(as_json)


@app.command()
def status(as_json: Json = False) -> None:
    """Chain, market, Redis, evaluation, lake: healthy or not.

    Also the candidates per scenario and the KPIs. Exit code 0 when all is well; 1 when the node or Redis
    cannot be reached, the market is not found, or the last evaluation is more than 30 blocks behind the chain.
    """
    from . import status as command

    raise typer.Exit(command.main(as_json))


@app.command()
def watch(
    max_blocks: Annotated[int, typer.Option(min=0, help="Stop after this many blocks (0 = follow forever).")] = 0,
    no_redis: Annotated[bool, typer.Option("--no-redis", help="Compute without writing to Redis.")] = False,
) -> None:
    """Follow the chain: each block's candidates into Redis.

    Every block: touched users re-read, the engine re-run, candidates written to Redis; /metrics on
    METRICS_HOST:METRICS_PORT.
    """
    from . import watch as command

    command.main(max_blocks, use_redis=not no_redis)


@app.command()
def execute(
    live: Annotated[
        bool,
        typer.Option(
            "--live/--dry-run",
            help="Sign and send (needs EXECUTION_ENABLED=true too), or only log and record what would be sent.",
        ),
    ] = False,
    max_blocks: Annotated[int, typer.Option(min=0, help="Stop after this many blocks (0 = follow forever).")] = 0,
) -> None:
    """The watcher with the executor: liquidate the users below HF 1.

    Every block, as soon as it is read (the watchlist) and after the evaluation: plan, claim (Redis), verify with
    eth_simulateV1 and, live, sign and send through EXECUTOR_LIQUIDATOR; dry-run by default. On the devnet, the
    Liquidator `make dev` deployed.
    """
    from . import execute as command

    command.main(max_blocks, live=live)


@app.command()
def node(as_json: Json = False) -> None:
    """What the node offers beyond plain JSON-RPC: a pending stream, eth_sendRawTransactionSync, eth_simulateV1."""
    from . import node as command

    raise typer.Exit(command.main(as_json))


@app.command()
def scan(
    from_block: Annotated[int, typer.Option("--from-block", min=0, help="First block whose events name borrowers.")],
    to_block: Annotated[
        int | None, typer.Option("--to-block", min=0, help="Last block; state is read here. Default: latest.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per user.")] = False,
    out_path: Annotated[str | None, typer.Option("--out", help="Write the rows to this Parquet file.")] = None,
) -> None:
    """Borrowers of a block range and their exact health factors.

    On any Aave V3 chain: RPC_URL, AAVE_ADDRESSES_PROVIDER, AAVE_PROTOCOL_VERSION (both empty: the devnet).
    """
    from . import scan as command

    command.main(from_block, to_block, as_json=as_json, out_path=out_path)


@app.command()
def backfill(
    from_block: Annotated[int, typer.Option("--from-block", min=0, help="First block of the history to build.")],
    to_block: Annotated[int, typer.Option("--to-block", min=0, help="Last block (must be final).")],
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel",
            min=1,
            help="Ranges materialized at once, each in a worker process (1: in this process, one after the other).",
        ),
    ] = 1,
) -> None:
    """Materialize the lake over a block range (in Dagster).

    Exit code 1 when a range failed.
    """
    if parallel > 1:
        _start_backfill_workers()
    from . import backfill as command

    raise typer.Exit(command.main(from_block, to_block, parallel))


def _start_backfill_workers() -> None:
    """`liq backfill --parallel`: the server its workers are forked from starts importing Dagster now, while this
    process does the same (side by side on 2 cores, instead of one after the other: measured 10 s later to the
    first run on a busy machine). The workers get the environment when the pool is made (backfill._new_pool)."""
    import multiprocessing
    from multiprocessing import forkserver

    preload = ["liq_pipeline.commands.backfill", "dagster_postgres"]  # as backfill.WORKER_PRELOAD
    multiprocessing.get_context("forkserver").set_forkserver_preload(preload)
    forkserver.ensure_running()


app.command("backtest")(backtest_command)  # options and help with the command: commands/backtest.py


@app.command()
def exporter(
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port (default EXPORTER_PORT; 0 = free).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default METRICS_HOST).")] = None,
    market: Annotated[
        list[str] | None,
        typer.Option(
            metavar="CHAIN_ID:POOL", help="Export this market only (repeatable). Default: every market in Redis."
        ),
    ] = None,
) -> None:
    """Serve the KPIs of Dagster runs from Redis to Prometheus."""
    from . import exporter as command

    command.main(port, host, market or [])


@app.command()
def harness(
    users: Annotated[int, typer.Option("--users", min=1, help="Borrowers in the generated market.")] = 2_000,
    top: Annotated[int, typer.Option("--top", min=0, help="Candidates to print per scenario.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the candidates as JSON lines.")] = False,
) -> None:
    """Evaluate a generated market and print its candidates."""
    from . import harness as command

    command.main(users, top, as_json)


@app.command()
def bench(
    users: Annotated[int, typer.Option("--users", min=1, help="Synthetic borrowers to evaluate.")] = 1_000_000,
    scenarios: Annotated[int, typer.Option("--scenarios", min=1, max=3, help="baseline, adverse, extreme.")] = 3,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Timed runs; the median is reported.")] = 5,
    loop_sample: Annotated[int, typer.Option(min=1, help="Users timed in the plain Python loop.")] = 20_000,
    exact_sample: Annotated[int, typer.Option(min=0, help="Random users checked on the exact path.")] = 20_000,
    version: Annotated[
        str, typer.Option(help="Protocol rounding rules, 3.0 to 3.7 (default AAVE_PROTOCOL_VERSION).")
    ] = "",
    as_json: Json = False,
) -> None:
    """The engine against the bare kernel (the limit of what it computes) and a Python loop."""
    from . import benches

    benches.engine(users, scenarios, repeats, loop_sample, exact_sample, version, as_json)


@app.command("bench-watch")
def bench_watch(
    borrowers: Annotated[
        int,
        typer.Option(
            "--borrowers",
            "--users",
            min=1,
            help="Real borrowers seeded on the devnet (cached); with --synthetic, generated borrowers.",
        ),
    ] = 10_000,
    blocks: Annotated[int, typer.Option(min=1, help="Blocks with traffic to measure.")] = 100,
    as_json: Json = False,
    shocks: Annotated[
        bool | None,
        typer.Option(help="Crash the market now and then (default: off on the devnet, on with --synthetic)."),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the devnet's borrowers and of the traffic.")] = 0,
    vol_scale: Annotated[float, typer.Option(min=0.0, help="Price volatility x the assets' real one.")] = 1.0,
    protocol: DevnetProtocol = None,
    synthetic: Annotated[
        bool, typer.Option("--synthetic", help="Generated market and blocks, no node: sizes anvil cannot seed.")
    ] = False,
    touched: Annotated[
        float, typer.Option(min=0.0, help="With --synthetic: mean touched users per block (Poisson).")
    ] = 300.0,
    execute: Annotated[
        bool,
        typer.Option(
            "--execute", help="The executor live on the devnet after each evaluation (block seen -> tx accepted)."
        ),
    ] = False,
    inventory_usd: Annotated[
        float, typer.Option(min=0.0, help="With --execute: debt-asset inventory of the Liquidator, USD per asset.")
    ] = 0.0,
    rtt_ms: Annotated[
        float,
        typer.Option(
            "--rtt-ms",
            min=0.0,
            help="The watcher's node through a relay adding this round-trip time (ms) to every request.",
        ),
    ] = 0.0,
) -> None:
    """Watcher latency on real devnet positions under live traffic, or on generated blocks (--synthetic).

    Block seen -> candidates written, per block; with --execute, also block seen -> signed transaction accepted.
    """
    from . import benches

    if synthetic:
        if execute:
            raise typer.BadParameter("--execute needs a node: it cannot run with --synthetic", param_hint="--execute")
        if rtt_ms:
            raise typer.BadParameter("--rtt-ms needs a node: it cannot run with --synthetic", param_hint="--rtt-ms")
        benches.watch_synthetic(  # the engine's rules: --protocol, else AAVE_PROTOCOL_VERSION
            borrowers,
            blocks,
            as_json,
            shocks=shocks is not False,
            seed=seed,
            vol_scale=vol_scale,
            touched=touched,
            protocol=protocol,
        )
        return
    if protocol is not None:  # run_bench_watch reads it from the settings (DEVNET_PROTOCOL_VERSION)
        os.environ["DEVNET_PROTOCOL_VERSION"] = protocol

    benches.watch(
        borrowers,
        blocks,
        as_json,
        shocks=bool(shocks),
        seed=seed,
        vol_scale=vol_scale,
        execute=execute,
        inventory_usd=inventory_usd,
        rtt_ms=rtt_ms,
    )


@app.command("bench-cache")
def bench_cache(
    users: Annotated[int, typer.Option(min=1, help="Users in the positions value.")] = 100_000,
    candidates: Annotated[int, typer.Option(min=1, help="Members of the candidates ZSET.")] = 10_000,
    repeat: Annotated[int, typer.Option(min=1, help="Timed runs; the median is reported.")] = 5,
    per_user: Annotated[bool, typer.Option("--per-user", help="Also time the per-user-keys layout (slow).")] = False,
) -> None:
    """Redis timings on the embedded server (JSON)."""
    from . import benches

    benches.cache(users, candidates, repeat, per_user)


@app.command("bench-backfill")
def bench_backfill(
    ranges: Annotated[int, typer.Option(min=1, help="Block ranges to backfill.")] = 20,
    parallel: Annotated[
        str, typer.Option(help="Worker counts to time, comma-separated (1 is always timed: the baseline).")
    ] = "1,2,4",
    size: Annotated[
        int | None, typer.Option(min=10, help="Blocks per range (default: LAKE_RANGE_BLOCKS' default, 1000).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep the devnet state cache here (default: a temporary dir).")
    ] = None,
    as_json: Json = False,
) -> None:
    """`liq backfill --parallel N` throughput on a devnet, Dagster on PostgreSQL (JSON)."""
    import json

    from ..bench.backfill import BenchError, parse_parallel, run_backfill_bench
    from ..bench.postgres import PostgresUnavailable
    from .runtime import CommandError

    try:
        counts = parse_parallel(parallel)
    except BenchError as error:
        raise typer.BadParameter(str(error)) from None
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if not as_json else (lambda _m: None)
    try:
        sizing = {} if size is None else {"size": size}
        result = run_backfill_bench(ranges=ranges, parallel=counts, data_dir=data_dir, say=say, **sizing)
    except (BenchError, PostgresUnavailable) as error:
        raise CommandError(str(error)) from None
    print(json.dumps(result) if as_json else json.dumps(result, indent=2))


@app.command("bench-lake")
def bench_lake(
    size: Annotated[int, typer.Option(min=10, help="Blocks per range.")] = 1_000,
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep the devnet state cache here (default: a temporary dir).")
    ] = None,
    quiet_chain: Annotated[
        bool, typer.Option("--quiet-chain", help="Mine empty blocks instead of simulating.")
    ] = False,
    candidate_step: Annotated[int, typer.Option(min=1, help="Evaluate the engine every N blocks.")] = 10,
) -> None:
    """Seconds per lake dataset of one block range (JSON)."""
    from . import benches

    benches.lake(size, data_dir, quiet_chain, candidate_step)


@app.command()
def arena(
    blocks: Annotated[int, typer.Option(min=1, help="Simulated blocks.")] = 300,
    competitor_delay: Annotated[
        int, typer.Option(min=0, help="Blocks the competitor lands after our first chance (0: the same block).")
    ] = 1,
    borrowers: Annotated[int, typer.Option(min=1, help="Seeded borrowers (state cache under DATA_DIR/arena).")] = 2_000,
    seed: Annotated[int, typer.Option(help="Seed of the borrowers and the simulated market.")] = 0,
    vol_scale: Annotated[float, typer.Option(min=0.0, help="Price volatility multiplier.")] = 10.0,
    inventory_usd: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Debt assets the Liquidator holds per reserve, USD (0: flash loans only); the competitor mints "
            "whatever it repays.",
        ),
    ] = 100_000_000.0,
    restock: Annotated[
        bool,
        typer.Option(
            help="Refill the inventory to --inventory-usd in every block (an operator's treasury; the competitor "
            "never runs out of funds either)."
        ),
    ] = True,
    protocol: DevnetProtocol = None,
    competitor: Annotated[
        ArenaCompetitor,
        typer.Option(
            help="The rivals: delayed (reacts to sealed blocks, --competitor-delay blocks behind us), same-block "
            "(the same, racing us for the block after the crossing), preconf (plus one acting on the pending "
            "update), svr (plus Chainlink SVR's auction winner right behind each update).",
        ),
    ] = ArenaCompetitor.delayed,
    trigger: Annotated[
        ArenaTrigger,
        typer.Option(help="Act on sealed blocks only, or also on price updates seen before their block is sealed."),
    ] = ArenaTrigger.sealed,
    window_ms: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="How long a block's price updates are pending before it is sealed (default: 200 with "
            "--trigger pending or a preconf/svr competitor, else 0).",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """The executor, live on the devnet, against the simulator's competitors: who wins, what it earns (JSON)."""
    from . import benches

    pace = {"competitor": competitor.value, "trigger": trigger.value, "window_ms": window_ms}
    benches.arena(blocks, competitor_delay, borrowers, seed, vol_scale, inventory_usd, restock, protocol, as_json, pace)


@app.command("bench-seed")
def bench_seed(
    borrowers: Annotated[int, typer.Option(min=1, help="Borrowers seeded per run.")] = 2_000,
    repeats: Annotated[int, typer.Option(min=1, help="Runs; the median is reported.")] = 3,
    sim_blocks: Annotated[int, typer.Option(min=0, help="Simulated blocks timed after seeding.")] = 200,
) -> None:
    """Devnet deployment, seeding, simulation speed (JSON)."""
    from . import benches

    benches.seed(borrowers, repeats, sim_blocks)


@app.command()
def demo(
    blocks: Annotated[int, typer.Option(min=1, help="Blocks of simulated market.")] = 300,
    borrowers: Annotated[int, typer.Option(min=1, help="Seeded borrowers.")] = 2_000,
    dagster_every: Annotated[int, typer.Option(min=0, help="A Dagster evaluation every N blocks (0: none).")] = 25,
    as_json: Json = False,
    protocol: DevnetProtocol = None,
) -> None:
    """The whole system headless on a simulated market, one summary.

    A fresh devnet with shocks and a competitor liquidator, the watcher, Dagster evaluations in-process.
    """
    from . import demo as command

    command.main(blocks, borrowers, dagster_every, as_json, protocol)


@app.command()
def dev(
    borrowers: Annotated[int, typer.Option(min=0, help="Borrowers seeded on the devnet.")] = 2_000,
    block_time: Annotated[int, typer.Option(min=1, help="Seconds between simulated blocks (Base: 2).")] = 2,
    protocols: Annotated[
        str,
        typer.Option(
            help="Markets to run side by side, one Aave version each, like 3.6,3.0: a devnet, simulator, watcher "
            "and Dagster code location per market (default: DEVNET_PROTOCOL_VERSION alone)."
        ),
    ] = "",
) -> None:
    """The whole platform locally (what `make dev` runs).

    Devnet + simulator, embedded Redis, watcher, exporter, Dagster UI. Ctrl-C stops it all.
    """
    from . import runtime
    from .dev import run_dev

    settings = runtime.settings()
    chosen = [part.strip() for part in protocols.split(",") if part.strip()]
    raise typer.Exit(run_dev(settings, borrowers, block_time, lambda line: print(line, flush=True), chosen))


@redis_app.command("start")
def redis_start() -> None:
    """Start the embedded Redis (or find it running); print its pid and where it listens."""
    from . import embedded_redis

    embedded_redis.start()


@redis_app.command("status")
def redis_status() -> None:
    """Whether the embedded Redis runs (exit code 0) or not (1)."""
    from . import embedded_redis

    raise typer.Exit(embedded_redis.status())


@redis_app.command("stop")
def redis_stop() -> None:
    """Save and stop the embedded Redis."""
    from . import embedded_redis

    embedded_redis.stop()


@redis_app.command("url")
def redis_url() -> None:
    """Print the embedded Redis's URL, starting it if needed (it carries a password in TCP mode: for scripts)."""
    from . import embedded_redis

    embedded_redis.url()


app.add_typer(devnet_app, name="devnet")
app.add_typer(redis_app, name="redis")


def main() -> None:
    """The `liq` entry point: the app, with command-line mistakes as one line and crashes without secrets."""
    try:
        code = typer.main.get_command(app).main(prog_name="liq", standalone_mode=False)
    except typer.TyperException as error:
        code = usage_error(error)
    except typer.Abort:
        code = 130
    except Exception:
        from .runtime import report_crash

        code = report_crash()
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
