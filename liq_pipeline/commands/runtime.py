"""What every `liq` command does when it runs: read the settings, find the node, fail in one line.

Settings are read when a command runs, never for `--help`. The node is RPC_URL + AAVE_ADDRESSES_PROVIDER, or,
with both empty, the devnet running for DATA_DIR (`liq devnet up`, `make dev`), announced in one line on stderr.
Every command that talks to a node goes through `connect`, which enforces CHAIN_ID when it is set.

Exit codes, the same for every command:
  0  done;
  1  done, and the outcome is bad: `liq status` found something unreachable or behind, `liq devnet verify` a flip,
     `liq backfill` a failed range;
  2  a mistake to fix: an option or a setting, nothing to connect to, a node of another chain, a wrong
     AAVE_ADDRESSES_PROVIDER, no devnet running;
  3  the node (or the embedded Redis) cannot be used: unreachable, or it answered an error;
  130 interrupted.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from pydantic import SecretStr

from ..cache.server import EmbeddedRedisError
from ..chain.discovery import ReaderError
from ..chain.rpc import NodeUnavailable, RpcClient, RpcError
from ..config import Settings, SettingsError, load_settings
from ..devnet import anvil
from ..devnet.errors import DevnetError
from ..devnet.market import load_market
from . import redaction

EXIT_UNHEALTHY = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A command cannot go on; the message is for the user, one line. Exit code 2 unless told otherwise."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def error_line(message: str, prefix: str = "error") -> None:
    for line in str(message).splitlines() or [""]:
        sys.stderr.write(f"{prefix}: {redaction.redact(line)}\n")


def note(message: str) -> None:
    """One line on stderr (stdout stays for the command's output: JSON, tables)."""
    sys.stderr.write(redaction.redact(message) + "\n")
    sys.stderr.flush()


def exit_code_for(error: BaseException) -> int | None:
    """Print a known failure as one line and give its exit code; None for anything else (a bug)."""
    if isinstance(error, CommandError):
        error_line(str(error))
        return error.code
    if isinstance(error, SettingsError):
        error_line(str(error), prefix="config error")
        return EXIT_USAGE
    if isinstance(error, DevnetError | ReaderError):
        error_line(str(error))
        return EXIT_USAGE
    if isinstance(error, NodeUnavailable | EmbeddedRedisError):
        error_line(str(error))
        return EXIT_UNAVAILABLE
    if isinstance(error, RpcError):
        error_line(f"the node answered an error: {error}")
        return EXIT_UNAVAILABLE
    if isinstance(error, KeyboardInterrupt):
        error_line("interrupted")
        return EXIT_INTERRUPTED
    return None


def report_crash() -> int:
    """An unexpected exception: its traceback on stderr, secrets cut out. Exit code 1."""
    sys.stderr.write(redaction.redact(traceback.format_exc()))
    return 1


def settings() -> Settings:
    """The settings, validated (SettingsError: one `config error:` line per bad variable, exit 2); from here on
    logging goes to stderr at LOG_LEVEL, and no secret of these settings appears in any line."""
    loaded = load_settings()
    redaction.install(loaded)
    return loaded


def shown(data_dir: Path | str) -> str:
    text = str(data_dir)
    return text if Path(text).is_absolute() or text.startswith(".") else f"./{text}"


def running_devnet(data_dir: Path | str) -> anvil.AnvilNode | None:
    """The devnet running for this data dir, if any (without creating the data dir to find out)."""
    if not (Path(data_dir) / "devnet" / anvil.PID_FILE).is_file():
        return None
    return anvil.running_node(data_dir)


def node_settings(settings: Settings) -> Settings:
    """Settings naming a node and a market: RPC_URL + AAVE_ADDRESSES_PROVIDER, or with both empty the running
    devnet of DATA_DIR (said in one line on stderr, and exported to this process's environment for the library
    code that reads the settings itself, like Dagster's resources)."""
    rpc_set, provider_set = settings.rpc_url is not None, settings.aave_addresses_provider is not None
    if rpc_set and provider_set:
        return settings
    if rpc_set != provider_set:
        given, missing = ("RPC_URL", "AAVE_ADDRESSES_PROVIDER") if rpc_set else ("AAVE_ADDRESSES_PROVIDER", "RPC_URL")
        raise CommandError(
            f"{missing} is not set but {given} is: set both (a node and its market's PoolAddressesProvider), "
            "or neither to use the devnet running for DATA_DIR"
        )
    node = running_devnet(settings.data_dir)
    if node is None:
        raise CommandError(
            "RPC_URL and AAVE_ADDRESSES_PROVIDER are not set and no devnet runs for "
            f"DATA_DIR={shown(settings.data_dir)}: start one with `liq devnet up` (or `make dev`), "
            "or set both to use another chain"
        )
    market = load_market(settings.data_dir)
    provider, version = market.addresses_provider, market.protocol_version
    # the devnet's version is a fact of its market.json; only a contrary value in the environment is a mistake (a
    # .env copied from .env.example names the default, 3.0, whatever devnet runs)
    if os.environ.get("AAVE_PROTOCOL_VERSION", version) != version:
        raise CommandError(
            f"AAVE_PROTOCOL_VERSION={settings.aave_protocol_version} but the devnet of {shown(settings.data_dir)} "
            f"runs Aave V{version}: unset it (the devnet's version is used) or set it to {version}"
        )
    note(f"using the devnet of {shown(settings.data_dir)} ({node.url}, provider {provider}, Aave V{version})")
    os.environ["RPC_URL"] = node.url
    os.environ["AAVE_ADDRESSES_PROVIDER"] = provider
    os.environ["AAVE_PROTOCOL_VERSION"] = version
    update = {"rpc_url": SecretStr(node.url), "aave_addresses_provider": provider, "aave_protocol_version": version}
    return settings.model_copy(update=update)


def chain_id_problem(settings: Settings, chain_id: int, label: str) -> str | None:
    """The one CHAIN_ID check: None when the node's chain is the one the settings expect (or they expect none)."""
    if settings.chain_id is None or settings.chain_id == chain_id:
        return None
    return f"CHAIN_ID={settings.chain_id} but the node at {label} is chain {chain_id}"


def connect(settings: Settings, retries: int = 4) -> RpcClient:
    """A client of the settings' node (see `node_settings`), once its chain id is checked against CHAIN_ID."""
    assert settings.rpc_url is not None, "node_settings() first"
    rpc = settings.node_client(retries=retries)
    try:
        answer = rpc.call("eth_chainId")
        try:
            chain_id = int(answer, 16)
        except (TypeError, ValueError):
            raise CommandError(
                f"the node at {rpc.label} answered eth_chainId with {answer!r}", EXIT_UNAVAILABLE
            ) from None
        problem = chain_id_problem(settings, chain_id, rpc.label)
    except BaseException:
        rpc.close()
        raise
    if problem is not None:
        rpc.close()
        raise CommandError(problem)
    return rpc
