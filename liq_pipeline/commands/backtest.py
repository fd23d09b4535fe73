"""`liq backtest`: the engine graded by the chain over a past block range (liq_pipeline/backtest/, docs/backtest.md).

The command's options live here with the command (`cli.py` registers it); everything heavy is imported when it
runs, so `liq --help` stays light. With RPC_URL and AAVE_ADDRESSES_PROVIDER empty it uses the devnet running for
DATA_DIR. A range the node cannot serve is one line and exit code 2; a node that fails, one line and exit code 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def command(
    from_block: Annotated[int, typer.Option("--from-block", min=0, help="First block to grade.")],
    to_block: Annotated[int, typer.Option("--to-block", min=0, help="Last block to grade (at most the head).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Directory for the report and its datasets (default DATA_DIR/backtest/A-B)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
    sweep: Annotated[
        bool,
        typer.Option("--sweep", help="Grade a grid of engine settings on the same history (chain read once)."),
    ] = False,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            metavar="NAME[/NAME]=V[/V],...",
            help="A sweep dimension, replacing the default one of those settings (repeatable), e.g. "
            "PREDICTIVE_HORIZON_SEC=60,180 or "
            "PREDICTIVE_ADVERSE_SHOCK_BPS/PREDICTIVE_EXTREME_SHOCK_BPS=100/200,200/400.",
        ),
    ] = None,
) -> None:
    """Grade the engine by the chain over a block range.

    Truth from the Pool (getUserAccountData of every borrower at every block, LiquidationCall events) against the
    engine replayed block by block as a watcher would have run it: recall at the crossing, flagged ahead, lead
    time, precision within the horizon, candidates per block, liquidations never flagged. The report (Markdown,
    JSON) and the predictions go to --out. --sweep: the same over a grid of settings, with the frontier (flagged
    ahead vs precision, among points with recall 1.0) and the recommended settings.
    """
    main(from_block, to_block, out, as_json, sweep, grid or [])


def main(
    from_block: int, to_block: int, out: Path | None, as_json: bool, sweep: bool = False, grid: list[str] | None = None
) -> None:
    import json

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..backtest.output import write_outputs, write_sweep
    from ..backtest.run import BacktestError, plan_range, run_backtest
    from ..backtest.sweep import parse_grid, run_sweep
    from ..risk.blas import use_one_blas_thread
    from . import runtime

    if to_block < from_block:  # before anything is read: mistakes in the options
        raise runtime.CommandError(f"--to-block {to_block} is before --from-block {from_block}")
    if out is not None and out.exists() and not out.is_dir():
        raise runtime.CommandError(f"--out {str(out)!r} is not valid: it exists and is not a directory")
    if grid and not sweep:
        raise runtime.CommandError("--grid is not valid without --sweep")
    loaded = runtime.settings()  # the environment first: a bad variable is its own line, not the grid's
    try:
        dimensions = parse_grid(grid or []) if sweep else []
    except BacktestError as error:
        raise runtime.CommandError(str(error)) from None
    settings = runtime.node_settings(loaded)
    use_one_blas_thread()
    err = Console(stderr=True, highlight=False)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with runtime.connect(settings) as rpc:
        try:
            plan = plan_range(rpc, settings, from_block, to_block)
        except BacktestError as error:
            raise runtime.CommandError(str(error)) from None
        if plan.clamped:
            runtime.note(
                f"blocks {from_block}-{plan.graded_from - 1} have no state on this node (first block with state: "
                f"{plan.state_from}): grading {plan.graded_from}-{to_block}"
            )
        with Progress(*columns, console=err, transient=True) as progress:
            tasks: dict[str, int] = {}

            def tick(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total)
                progress.update(tasks[stage], completed=done, total=total)

            swept = run_sweep(rpc, settings, plan, dimensions, progress=tick) if sweep else None
            backtest = swept.backtest if swept else run_backtest(rpc, settings, plan, progress=tick)
    name = f"{plan.graded_from}-{to_block}" + ("-sweep" if sweep else "")
    target = out if out is not None else Path(settings.data_dir) / "backtest" / name
    if swept:
        paths = write_sweep(swept, target, settings.lake_range_blocks)
    else:
        paths = write_outputs(backtest, target, settings.lake_range_blocks)
    runtime.note(f"report: {paths['markdown']}")
    report = backtest.report
    if as_json:
        print(json.dumps(report, allow_nan=False))
        return
    text = Console(highlight=False)
    for key in (
        "crossings",
        "recall_at_cross",
        "flagged_ahead_share",
        "lead_time_p50_s",
        "precision_within_horizon",
        "candidates_per_block_p50",
        "liquidations_onchain",
        "liquidations_unflagged",
    ):
        per = "  ".join(f"{name} {values.get(key)}" for name, values in report["scenarios"].items())
        text.print(f"{key:>26}  {report.get(key)}" + (f"   ({per})" if per else ""))
    if swept:
        best = report["recommended"]
        text.print(f"{'sweep':>26}  {len(report['sweep'])} points, {len(report['frontier'])} on the frontier")
        text.print(f"{'recommended':>26}  {best['env'] if best else None}")
