"""The `liq` command's surface as a user meets it: help everywhere (even with a bad setting), `-h`, `--version`,
flags without a value placeholder, one error style. Each run is the console script in a subprocess (help pages of
every command: its entry point, once per command, in one subprocess); a test's independent runs go at once."""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import typer.main

from liq_pipeline import __version__
from liq_pipeline.commands.cli import app
from liq_pipeline_tests.commands.clirun import lines, liq, liq_at_once, liq_many


def command_paths() -> list[tuple[str, ...]]:
    paths, stack = [], [((), typer.main.get_command(app))]
    while stack:
        path, command = stack.pop()
        paths.append(path)
        stack.extend(((*path, name), sub) for name, sub in getattr(command, "commands", {}).items())
    return sorted(paths)


def test_the_command_tree_is_complete():
    paths = command_paths()
    for expected in [("config",), ("status",), ("scan",), ("devnet", "up"), ("redis", "start"), ("bench-cache",)]:
        assert expected in paths


def test_help_of_every_command_works_with_a_bad_setting(cli_env, clean_env):
    env = {**cli_env, "PREDICTIVE_HF_BUFFER_BPS": "abc", "RPC_URL": "wss://node.example"}
    with ThreadPoolExecutor(2) as pool:  # the help pages and `liq config`, at once
        helps = pool.submit(liq_many, [[*path, "--help"] for path in command_paths()], env, clean_env)
        config = pool.submit(liq, "config", env=env, cwd=clean_env)
        results, ran = helps.result(), config.result()
    for argv, code, out, err in results:
        assert code == 0 and out.startswith("Usage: liq"), (argv, err)
        assert err == "", argv
    # and the bad setting still stops a command that runs
    assert ran.returncode == 2 and "PREDICTIVE_HF_BUFFER_BPS='abc'" in ran.stderr


def test_dash_h_is_help_everywhere(cli_env, clean_env):
    paths = [(), ("devnet",), ("redis",), ("scan",), ("devnet", "up")]
    results = liq_at_once([[*path, flag] for path in paths for flag in ("-h", "--help")], env=cli_env, cwd=clean_env)
    for path, short, long in zip(paths, results[::2], results[1::2], strict=True):
        assert short.returncode == 0 and short.stdout == long.stdout and "Usage: liq" in short.stdout, path


def test_version(cli_env, clean_env):
    result = liq("--version", env=cli_env, cwd=clean_env)
    assert result.returncode == 0 and result.stdout == f"liq {__version__}\n"


def test_flags_take_no_value_and_show_none(cli_env, clean_env):
    """No `<bool>` placeholder, and every flag the help shows parses as shown (`--flag -h` is help, not a value)."""
    helps = liq_many([[*path, "-h"] for path in command_paths()], cli_env, clean_env)
    flag_runs = []
    for argv, _, out, _ in helps:
        assert "<bool>" not in out and "BOOLEAN" not in out, argv
        for row in re.findall(r"^  (-[-\w]+(?: / --[-\w]+)?)\s{2,}", out, flags=re.MULTILINE):
            for flag in row.split(" / "):  # a row with no value placeholder: a flag (or a pair of them)
                if flag not in ("-h", "--help", "--version"):
                    flag_runs.append([*argv[:-1], flag, "-h"])
    assert ["watch", "--no-redis", "-h"] in flag_runs and ["devnet", "up", "--no-cache", "-h"] in flag_runs
    halves = [flag_runs[::2], flag_runs[1::2]]  # in two subprocesses at once
    with ThreadPoolExecutor(2) as pool:
        ran = [pool.submit(liq_many, half, cli_env, clean_env) for half in halves]
        runs = [run for half in ran for run in half.result()]
    assert sorted(argv for argv, *_ in runs) == sorted(flag_runs)  # every flag ran
    for argv, code, out, err in runs:
        assert code == 0 and out.startswith("Usage: liq"), (argv, err)


ERRORS = [  # (argv, settings, how stderr starts)
    (["scan", "--from-block", "x"], {}, "error: Invalid value for '--from-block'"),
    (["scan"], {}, "error: Missing option '--from-block'"),
    (["bogus"], {}, "error: No such command 'bogus'"),
    (["--bogus"], {}, "error: No such option: --bogus"),
    (["devnet", "up", "--port", "0"], {}, "error: Invalid value for '--port'"),
    (["scan", "--from-block", "10", "--to-block", "5"], {}, "error: --to-block 5 is before --from-block 10"),
    (["exporter", "--market", "8453"], {}, "error: --market: expected CHAIN_ID:POOL_ADDRESS"),
    (["harness"], {"PREDICTIVE_HF_BUFFER_BPS": "abc"}, "config error: PREDICTIVE_HF_BUFFER_BPS='abc'"),
    (["devnet", "status"], {}, "error: no devnet is running for data dir"),
]


def test_one_error_style(cli_env, clean_env):
    """Every case of ERRORS, each in a subprocess of its own, all at once."""
    argvs, settings, _ = zip(*ERRORS, strict=True)
    results = liq_at_once(list(argvs), env=cli_env, cwd=clean_env, settings=list(settings))
    for (argv, _, start), result in zip(ERRORS, results, strict=True):
        assert result.returncode == 2, (argv, result.stderr)
        assert len(lines(result.stderr)) == 1 and result.stderr.startswith(start), (argv, result.stderr)
        assert result.stdout == "", argv


def test_help_imports_neither_the_settings_nor_the_commands(clean_env):
    """What keeps `liq --help` fast: it loads typer and the command tree only."""
    code = (
        "import sys\n"
        "sys.argv = ['liq', '--help']\n"
        "from liq_pipeline.commands.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'liq_pipeline.config', 'pydantic', 'polars', 'dagster', 'web3', 'requests', 'rich', 'numpy'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=clean_env, check=False)
    assert result.stdout.splitlines()[-1] == "[]", result.stdout + result.stderr
