"""The `liq` command. Each subcommand is thin: it reads settings, calls library code, prints.

A user mistake (bad setting, bad option) ends with one line on stderr and exit code 2, never a stack trace.
Heavy modules (polars, web3, dagster) are imported inside the commands so that `liq --help` stays fast.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from ..config import Settings, SettingsError, load_settings
from .devnet import app as devnet_app

app = typer.Typer(
    name="liq",
    help="liq-pipeline: find Aave V3 borrowers about to become liquidatable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        for line in str(error).splitlines():
            err.print(f"[bold red]config error:[/] {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@app.callback()
def _startup(ctx: typer.Context) -> None:
    """Validate settings before any command runs: a bad value stops start-up with one clear line."""
    ctx.obj = settings_or_exit()


@app.command()
def config(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show the effective settings (secrets masked)."""
    settings: Settings = ctx.obj
    values = json.loads(settings.model_dump_json())
    for secret in ("rpc_url", "redis_url", "alert_webhook_url"):
        if values.get(secret):
            values[secret] = "**********"
    values = {key.upper(): value for key, value in values.items()}
    if as_json:
        print(json.dumps(values, indent=2))
        return
    for key, value in values.items():
        out.print(f"{key}={'' if value is None else value}", highlight=False)


@app.command()
def bench(
    ctx: typer.Context,
    users: Annotated[int, typer.Option("--users", min=1, help="Synthetic borrowers to evaluate.")] = 1_000_000,
    scenarios: Annotated[int, typer.Option("--scenarios", min=1, max=3, help="baseline, adverse, extreme.")] = 3,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Timed runs; the median is reported.")] = 5,
    loop_sample: Annotated[int, typer.Option(help="Users timed in the plain Python loop.")] = 20_000,
    exact_sample: Annotated[int, typer.Option(help="Random users checked on the exact path.")] = 20_000,
    version: Annotated[str, typer.Option(help="Protocol rounding rules, 3.0 to 3.7.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Benchmark the engine against a dense numpy kernel and a plain Python loop, in this process."""
    from ..bench.engine import run_bench
    from ..config import PROTOCOL_VERSIONS

    settings: Settings = ctx.obj
    chosen = version or settings.aave_protocol_version
    if chosen not in PROTOCOL_VERSIONS:
        raise fail(f"--version {chosen!r} is not valid: expected one of {', '.join(PROTOCOL_VERSIONS)}")
    if as_json:
        result = run_bench(users, scenarios, repeats, loop_sample, exact_sample, chosen)
        print(json.dumps(result))
        return
    with err.status("benchmarking") as status:
        result = run_bench(users, scenarios, repeats, loop_sample, exact_sample, chosen, status.update)
    for key, value in result.items():
        out.print(f"{key:>22}  {value}", highlight=False)


@app.command()
def harness(
    ctx: typer.Context,
    users: Annotated[int, typer.Option("--users", min=1, help="Borrowers in the generated market.")] = 2_000,
    top: Annotated[int, typer.Option("--top", min=0, help="Candidates to print per scenario.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the candidates as JSON lines.")] = False,
) -> None:
    """Evaluate a generated sample market and print the predictive candidates."""
    from .harness import run_harness

    run_harness(ctx.obj, users=users, top=top, as_json=as_json, console=out)


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Latest chain block, last evaluated block, lake partitions, candidates per scenario, KPIs, Redis reachable."""
    from .status import platform_status

    result = platform_status(ctx.obj)
    if as_json:
        print(json.dumps(result, default=str))
        return
    out.print_json(json.dumps(result, default=str))


@app.command()
def watch(
    ctx: typer.Context,
    max_blocks: Annotated[int, typer.Option(min=0, help="Stop after this many blocks (0 = follow forever).")] = 0,
    no_redis: Annotated[bool, typer.Option("--no-redis", help="Compute without writing to Redis.")] = False,
) -> None:
    """Follow every new block: refresh touched users, re-evaluate, write candidates in tens of milliseconds."""
    import logging

    from ..chain.discovery import ReaderError
    from ..chain.rpc import NodeUnavailable
    from ..watch.startup import watcher_from_settings

    settings: Settings = ctx.obj
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        watcher = watcher_from_settings(settings, use_cache=not no_redis)
    except (ValueError, ReaderError, NodeUnavailable) as error:
        raise fail(str(error)) from None

    def report(record) -> None:
        counts = " ".join(f"{k}={v}" for k, v in sorted(record.candidates.items()))
        logging.getLogger("liq_pipeline.watch").info(
            "block %d: %d users, %d touched, %.1f ms, candidates %s",
            record.block,
            record.users,
            record.touched,
            record.latency_ms,
            counts,
        )

    from ..metrics import BlockMetrics, serve_metrics

    watcher.on_block = report
    watcher.metrics = BlockMetrics()
    server = serve_metrics(watcher.metrics.registry, port=settings.metrics_port, host=settings.metrics_host)
    logging.getLogger("liq_pipeline.watch").info("metrics on %s", server.url)
    try:
        watcher.run(max_blocks=max_blocks or None)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        watcher.rpc.close()


@app.command()
def exporter(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port (default EXPORTER_PORT).")] = None,
) -> None:
    """Serve the KPIs that Dagster runs write to Redis as Prometheus metrics (127.0.0.1 by default)."""
    from ..metrics.exporter import run_exporter

    raise typer.Exit(run_exporter(ctx.obj, port))


@app.command("bench-watch")
def bench_watch(
    ctx: typer.Context,
    borrowers: Annotated[int, typer.Option(min=1, help="Real borrowers seeded on the devnet (cached).")] = 10_000,
    blocks: Annotated[int, typer.Option(min=1, help="Blocks with traffic to measure.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    shocks: Annotated[bool, typer.Option(help="Let the simulator crash the market now and then.")] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the devnet's borrowers and of the traffic.")] = 0,
    vol_scale: Annotated[float, typer.Option(min=0.0, help="Price volatility x the assets' real one.")] = 1.0,
) -> None:
    """Watcher latency, block seen -> candidates written, on real devnet positions with live traffic."""
    from ..bench.watch import run_bench_watch

    options = {"seed": seed, "shocks": shocks, "vol_scale": vol_scale}
    if as_json:
        print(json.dumps(run_bench_watch(ctx.obj, borrowers, blocks, **options)))
        return
    with err.status("benchmarking the watcher") as status:
        result = run_bench_watch(ctx.obj, borrowers, blocks, say=status.update, **options)
    for key, value in result.items():
        out.print(f"{key:>24}  {value}", highlight=False)


@app.command()
def demo(
    ctx: typer.Context,
    blocks: Annotated[int, typer.Option(min=1, help="Blocks of simulated market.")] = 300,
    borrowers: Annotated[int, typer.Option(min=1, help="Seeded borrowers.")] = 2_000,
    dagster_every: Annotated[int, typer.Option(min=0, help="A Dagster evaluation every N blocks (0: none).")] = 25,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The whole system headless on a simulated market with shocks and a competitor, then one summary."""
    from .demo import run_demo

    if as_json:
        print(json.dumps(run_demo(ctx.obj, blocks, borrowers, dagster_every)))
        return
    with err.status("running the demo") as status:
        result = run_demo(ctx.obj, blocks, borrowers, dagster_every, say=status.update)
    for key, value in result.items():
        out.print(f"{key:>34}  {value}", highlight=False)


@app.command()
def backfill(
    ctx: typer.Context,
    from_block: Annotated[int, typer.Option("--from-block", min=0, help="First block of the history to build.")],
    to_block: Annotated[int, typer.Option("--to-block", min=0, help="Last block (must be final).")],
) -> None:
    """Materialize the lake's datasets over a historical block range, with progress (recorded in Dagster)."""
    import os
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..chain.rpc import NodeUnavailable
    from .backfill import backfill as run_backfill

    settings: Settings = ctx.obj
    if to_block < from_block:
        raise fail(f"--to-block {to_block} is before --from-block {from_block}")
    home = Path(settings.data_dir).absolute() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DAGSTER_HOME", str(home))
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err) as progress:
            task = progress.add_task("backfill", total=None)

            def report(key: str, done: int, total: int) -> None:
                progress.update(task, description=f"range {key}", completed=done, total=total)

            result = run_backfill(from_block, to_block, progress=report)
    except (ValueError, NodeUnavailable) as error:
        raise fail(str(error)) from None
    for key, message in result.failed.items():
        err.print(f"[bold red]failed:[/] {key}: {message}", highlight=False)
    out.print(f"{len(result.ranges) - len(result.failed)} of {len(result.ranges)} ranges materialized", highlight=False)
    if result.failed:
        raise typer.Exit(1)


@app.command()
def dev(
    ctx: typer.Context,
    borrowers: Annotated[int, typer.Option(min=0, help="Borrowers seeded on the devnet.")] = 2_000,
    block_time: Annotated[int, typer.Option(min=1, help="Seconds between simulated blocks (Base: 2).")] = 2,
) -> None:
    """The whole platform locally: devnet + simulator, embedded Redis, Dagster UI. Ctrl-C stops it all."""
    from .dev import run_dev

    code = run_dev(ctx.obj, borrowers, block_time, lambda line: out.print(line, highlight=False))
    raise typer.Exit(code)


@app.command()
def scan(
    ctx: typer.Context,
    from_block: Annotated[int, typer.Option("--from-block", min=0, help="First block whose events name borrowers.")],
    to_block: Annotated[
        int | None, typer.Option("--to-block", min=0, help="Last block; state is read here. Default: latest.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per user.")] = False,
    out_path: Annotated[str | None, typer.Option("--out", help="Write the rows to this Parquet file.")] = None,
) -> None:
    """Discover borrowers in a block range and print their exact HF (needs RPC_URL, AAVE_ADDRESSES_PROVIDER)."""
    from pathlib import Path

    from ..chain.discovery import ReaderError
    from ..chain.rpc import NodeUnavailable
    from .scan import ScanInputError
    from .scan import scan as run_scan

    settings: Settings = ctx.obj
    if out_path is not None and not out_path.endswith(".parquet"):
        raise fail(f"--out {out_path!r} is not valid: expected a file name ending in .parquet")
    try:
        if as_json:
            result = run_scan(settings, from_block, to_block)
        else:
            with err.status("scanning") as status:
                result = run_scan(settings, from_block, to_block, status.update)
    except (ScanInputError, ReaderError, NodeUnavailable) as error:
        raise fail(str(error)) from None
    rows = result.rows
    if out_path is not None:
        from ..lake.files import write_parquet_atomic

        write_parquet_atomic(rows, Path(out_path))
        err.print(f"wrote {rows.height} users to {out_path}", highlight=False)
    if as_json:
        for row in rows.iter_rows(named=True):
            print(json.dumps(row))
    elif out_path is None:
        out.print(
            f"{rows.height} borrowers at block {result.state.block}; {int(rows['liquidatable'].sum())} liquidatable",
            highlight=False,
        )
        out.print(rows.head(20))


app.add_typer(devnet_app, name="devnet")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
