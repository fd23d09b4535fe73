"""The `liq` command: help everywhere, `liq bench --json` prints one JSON object (the benchmarks' own figures:
liq_pipeline_tests/bench/)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

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
