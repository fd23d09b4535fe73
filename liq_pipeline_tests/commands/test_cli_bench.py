"""The `liq` command: help everywhere, the benchmark's JSON contract on a small run."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from liq_pipeline.bench.engine import run_bench
from liq_pipeline.commands.cli import app

runner = CliRunner()


def _commands(typer_app, prefix=()):
    import typer.main

    group = typer.main.get_command(typer_app)
    stack = [(prefix, group)]
    while stack:
        path, command = stack.pop()
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            stack.append(((*path, name), sub))


def test_every_subcommand_has_help(clean_env):
    paths = list(_commands(app))
    assert ("bench",) in paths and ("harness",) in paths and ("config",) in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_bench_json_contract_small(clean_env):
    result = run_bench(users=3_000, scenarios=3, repeats=1, loop_sample=300, exact_sample=500)
    for key in (
        "users",
        "scenarios",
        "engine_s",
        "kernel_s",
        "loop_s",
        "engine_vs_kernel",
        "speedup_vs_loop",
        "peak_rss_mb",
        "exact_mismatches",
    ):
        assert key in result
    assert result["users"] == 3_000 and result["scenarios"] == 3
    assert result["exact_mismatches"] == 0
    assert result["exact_checked"] >= 500


def test_bench_cli_prints_one_json_object(clean_env):
    result = runner.invoke(
        app,
        [
            "bench",
            "--users",
            "2000",
            "--repeats",
            "1",
            "--loop-sample",
            "200",
            "--exact-sample",
            "200",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["exact_mismatches"] == 0


def test_bench_bad_version_is_one_line(clean_env):
    result = runner.invoke(app, ["bench", "--users", "10", "--version", "2.9"])
    assert result.exit_code == 2
    assert "2.9" in result.output and "3.0" in result.output


def test_harness_prints_candidates(clean_env):
    result = runner.invoke(app, ["harness", "--users", "500", "--top", "2"])
    assert result.exit_code == 0, result.output
    assert "baseline:" in result.output and "candidates" in result.output
