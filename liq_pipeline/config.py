"""Every setting of liq-pipeline, its default and its validation, in one place.

Settings come from the environment and from a `.env` file in the working directory (the environment wins).
`.env.example` mirrors this file; `liq_pipeline_tests/test_config.py` proves the two never drift.

A bad value never surfaces as a stack trace: `load_settings()` raises `SettingsError`, whose message is one line
per bad variable naming the variable, the value given and what is allowed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from eth_utils import is_checksum_address, to_checksum_address
from pydantic import SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .chain.multicall import MULTICALL3
from .chain.rpc import RpcClient

SCENARIO_NAMES = ("baseline", "adverse", "extreme")
PROTOCOL_VERSIONS = ("3.0", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7")
DEVNET_PROTOCOL_VERSIONS = ("3.0", "3.6")  # the markets liq_pipeline/devnet can run
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}
_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_BOOL_ALLOWED = "one of true/false, 1/0, yes/no, on/off (any case)"


class SettingsError(ValueError):
    """A setting has a value that cannot be used. The message is meant for the user, one line per problem."""


def parse_bool(value: Any) -> bool:
    """Strict boolean: only known spellings pass (a non-empty "false" must never read as true)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected {_BOOL_ALLOWED}")


def _strict_bool(value: Any) -> bool:
    return parse_bool(value)


def _int_in(value: Any, low: int, high: int | None, what: str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError(f"expected {what}")
    number = int(text)
    if number < low or (high is not None and number > high):
        raise ValueError(f"expected {what}")
    return number


def _float_in(value: Any, low: float, high: float, what: str) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError(f"expected {what}") from None
    if not (low <= number <= high):
        raise ValueError(f"expected {what}")
    return number


def _one_of(value: Any, choices: tuple[str, ...], what: str) -> str:
    """`value` as one of `choices` (any case, spaces around ignored); else the error says `what` is allowed."""
    text = str(value).strip().lower()
    if text not in choices:
        raise ValueError(f"expected {what}")
    return text


# Numeric settings: field -> (lowest, highest or None, what is allowed, in the words of the error message).
_BPS = "a whole number of basis points from 0 to {}"
_INT_RULES: dict[str, tuple[int, int | None, str]] = {
    "predictive_hf_buffer_bps": (0, 10_000, _BPS.format(10000)),
    "predictive_adverse_shock_bps": (0, 9_999, _BPS.format(9999)),
    "predictive_extreme_shock_bps": (0, 9_999, _BPS.format(9999)),
    "predictive_horizon_sec": (1, 86_400 * 30, "a whole number of seconds from 1 to 2592000"),
    "predictive_max_users_per_tick": (0, None, "a whole number >= 0 (0 means no cap)"),
    "predictive_price_window": (3, 100_000, "a whole number of observations from 3 to 100000"),
    "predictive_ema_span": (1, 100_000, "a whole number of observations from 1 to 100000"),
    "rpc_max_parallel_posts": (1, 32, "a whole number of requests at once from 1 to 32"),
    "redis_max_pipeline": (1, 100_000, "a whole number of entries per round trip from 1 to 100000"),
    "redis_hot_path_timeout_ms": (5, 60_000, "a whole number of milliseconds from 5 to 60000"),
    "watch_head_stall_blocks": (1, 10_000, "a whole number of block times from 1 to 10000"),
    "watch_speculate_before_ms": (0, 60_000, "a whole number of milliseconds from 0 to 60000"),
    "start_block": (0, None, "a block number >= 0"),
    "state_history_from_block": (0, None, "a block number >= 0"),
    "lake_range_blocks": (10, 1_000_000, "a whole number of blocks from 10 to 1000000"),
    "confirmations": (0, 10_000, "a whole number of blocks from 0 to 10000"),
    "kpi_latency_p95_ms": (1, 3_600_000, "a whole number of milliseconds from 1 to 3600000"),
    "kpi_watcher_p99_ms": (1, 3_600_000, "a whole number of milliseconds from 1 to 3600000"),
    "hf_check_sample": (1, 100_000, "a whole number of users from 1 to 100000"),
    "dagster_port": (1, 65_535, "a TCP port from 1 to 65535"),
    "metrics_port": (1, 65_535, "a TCP port from 1 to 65535"),
    "exporter_port": (1, 65_535, "a TCP port from 1 to 65535"),
    "run_retention_days": (1, 3_650, "a whole number of days from 1 to 3650"),
    "gas_ladder_profit_share_bps": (0, 10_000, _BPS.format(10000)),
    # geth and op-geth refuse a replacement whose fees rise by less than 10 % (txpool.pricebump).
    "gas_ladder_bump_bps": (
        1_000,
        100_000,
        "a whole number of basis points from 1000 (the node's 10 % minimum) to 100000",
    ),
    "gas_ladder_bump_after_blocks": (1, 1_000, "a whole number of blocks from 1 to 1000"),
    "gas_ladder_max_bumps": (0, 100, "a whole number of replacements from 0 to 100"),
    "precompute_top_k": (0, 100_000, "a whole number of candidates from 0 to 100000 (0 = precompute none)"),
    "execution_attempt_ttl_sec": (1, 86_400, "a whole number of seconds from 1 to 86400"),
    "execution_max_per_block": (1, 10_000, "a whole number of transactions from 1 to 10000"),
}
_FLOAT_RULES: dict[str, tuple[float, float, str]] = {
    "predictive_adverse_sigmas": (0.0, 10.0, "a number of standard deviations from 0 to 10"),
    "predictive_extreme_sigmas": (0.0, 10.0, "a number of standard deviations from 0 to 10"),
    "kpi_miss_rate_max": (0.0, 1.0, "a share from 0 to 1 (0.10 = 10 %)"),
    "backtest_min_precision": (0.0, 1.0, "a share from 0 to 1 (0.10 = 10 %)"),
    "backtest_min_lead_time_s": (0.0, 86_400.0, "a number of seconds from 0 to 86400"),
    "backtest_target_flagged_ahead": (0.0, 1.0, "a share from 0 to 1 (0.80 = 80 %)"),
    "execution_min_profit_usd": (0.0, 1e9, "an amount in US dollars from 0 to 1000000000"),
}


class Settings(BaseSettings):
    """The settings model. Field names are the environment variable names in lower case."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    # --- general -------------------------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    data_dir: Path = Path("data")
    # One market of several (docs/deployment.md, "Many markets"): its Dagster code location's name and the first
    # part of its asset keys (`base/liquidation_candidates`), so markets sharing one Dagster instance keep their
    # assets apart. Empty: one market, asset keys without a prefix (make dev).
    market_name: str | None = None

    # --- chain -----------------------------------------------------------------------------------------------
    # The RPC URL often carries an API key: kept secret, never printed (SecretStr masks it in reprs and logs).
    # Empty, with AAVE_ADDRESSES_PROVIDER empty too: the commands use the running devnet of DATA_DIR.
    rpc_url: SecretStr | None = None
    # The node's websocket endpoint, for what it shows before a block is sealed (chain/pending.py, `liq node`).
    # Empty: RPC_URL with ws(s):// for http(s):// (anvil and most providers serve both on one address). Secret too.
    rpc_ws_url: SecretStr | None = None
    chain_id: int | None = None
    aave_addresses_provider: str | None = None
    aave_protocol_version: str = "3.7"  # what Base runs since ~May 2026 (Pool revision 11)
    # The market `liq devnet up` / `liq devnet verify` start when --protocol is not given: 3.6 (the closest to Base
    # the npm sources allow) or 3.0.
    devnet_protocol_version: str = "3.6"
    multicall_address: str | None = MULTICALL3  # empty: plain JSON-RPC batches (chain/multicall.py)
    # A read too large for one request (a liquidation wave's positions, a bootstrap's) goes out as this many HTTP
    # requests at once at most (chain/rpc.py); 1: one after the other (a provider that rate-limits bursts)
    rpc_max_parallel_posts: int = 4

    # --- predictive engine -------------------------------------------------------------------------------------
    predictive_enabled: Annotated[bool, NoDecode] = False
    predictive_hf_buffer_bps: int = 40
    predictive_horizon_sec: int = 180
    predictive_scenarios: Annotated[tuple[str, ...], NoDecode] = SCENARIO_NAMES
    predictive_max_users_per_tick: int = 800
    predictive_adverse_shock_bps: int = 200  # the backtest's sweep: .env.example says why
    predictive_extreme_shock_bps: int = 400
    predictive_adverse_sigmas: float = 1.0
    predictive_extreme_sigmas: float = 2.0
    predictive_volatility_scaling: Annotated[bool, NoDecode] = True  # the backtest's sweep: .env.example
    predictive_price_window: int = 60
    predictive_ema_span: int = 20
    # the engine's per-block float pass (EngineParams.fused_threads): 0 the numpy pass, 1 the fused numba kernel,
    # 2 the fused kernel over two threads (docs/performance.md)
    liq_fused_kernel: Literal["0", "1", "2"] = "1"
    stable_asset_symbols: Annotated[tuple[str, ...], NoDecode] = (
        "USDC",
        "USDBC",
        "USDT",
        "DAI",
        "GHO",
        "EURC",
        "USDS",
        "LUSD",
        "CRVUSD",
        "PYUSD",
    )

    # --- platform: lake, Dagster, checks, alerts -------------------------------------------------------------
    start_block: int = 0
    state_history_from_block: int = 0
    lake_range_blocks: int = 1_000
    # The lake on object storage: s3://BUCKET/PREFIX (endpoint and credentials from the standard AWS variables:
    # AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION). Empty: the folder DATA_DIR/lake.
    lake_url: str | None = None
    confirmations: int = 10
    kpi_miss_rate_max: float = 0.10
    kpi_latency_p95_ms: int = 15_000
    kpi_watcher_p99_ms: int = 50
    # The watcher warns (once per stall) when the node shows no new head for this many block times (the block time
    # measured from the heads it sees, 2 s until it has seen a few): 3 = 6 s on Base, where no block is ever skipped.
    watch_head_stall_blocks: int = 3
    # The watcher's polls read the next block whole (one round trip less per block) from this many ms before it is
    # due (the last block's time + the block time the watcher measures); before that, eth_blockNumber alone. Such a
    # poll is ~20 requests on a 15-reserve market: every 20 ms all the time would be ~1,000 a second to the node.
    # 60000: always (a node of your own).
    watch_speculate_before_ms: int = 300
    # the backtest_report asset's WARN checks (issue #14): precision within the horizon, lead time p50 (seconds;
    # 2 s: one Base block, a crossing flagged at the block before it at the median)
    backtest_min_precision: float = 0.10
    backtest_min_lead_time_s: float = 2.0
    # the sweep recommends the most precise point flagging this share of crossings ahead, where one does
    backtest_target_flagged_ahead: float = 0.80
    hf_check_sample: int = 200
    alert_webhook_url: SecretStr | None = None
    dagster_port: int = 3000
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    exporter_port: int = 9465
    run_retention_days: int = 7

    # --- redis --------------------------------------------------------------------------------------------
    redis_url: SecretStr | None = None
    redis_enable_pipelining: Annotated[bool, NoDecode] = True
    redis_max_pipeline: int = 500
    # The watcher's Redis client waits this long for a connection or an answer before it treats Redis as down and
    # keeps its writes in memory (one warning; caught up when Redis answers again). A hung Redis costs a block this
    # much once per outage. 100 ms: docs/operations.md ("Redis or the node frozen") has the measurements.
    redis_hot_path_timeout_ms: int = 100
    borrowers_index_mode: Literal["memory", "redis"] = "memory"

    # --- execution (issue #13, being built: liq_pipeline/execution/) ------------------------------------------
    # false = dry-run: the executor decides and records what it would send, and sends nothing. Sending real
    # transactions with real money must be asked for explicitly.
    execution_enabled: Annotated[bool, NoDecode] = False
    # The operator key: a 32-byte hex private key, or a keystore file (geth / eth-account JSON) + its password.
    # Secrets: never printed (`liq config` shows ***, logs and errors have them cut out).
    executor_private_key: SecretStr | None = None
    executor_keystore: Path | None = None
    executor_keystore_password: SecretStr | None = None
    executor_keystore_password_file: Path | None = None
    # Smallest profit net of every cost worth a transaction. $1: on Base a liquidation's gas costs cents, and the
    # floor absorbs the rounding of the oracle price used to convert the profit to wei.
    execution_min_profit_usd: float = 1.0
    # Share of the expected profit offered as priority fee (20 %): enough to be ordered ahead of a competitor that
    # pays the usual tiny L2 tip, while most of the profit stays ours. Always capped by EXECUTION_MIN_PROFIT_USD.
    gas_ladder_profit_share_bps: int = 2_000
    # Fee rise of a replacement: 12.5 %, above the node's 10 % minimum with room for integer rounding.
    gas_ladder_bump_bps: int = 1_250
    # Replace a transaction not included after this many blocks (2 blocks = 4 s on Base: once is bad luck).
    gas_ladder_bump_after_blocks: int = 2
    # Replacements per attempt before it is left as it is (3 bumps raise the fees by 42 %).
    gas_ladder_max_bumps: int = 3
    # Candidates (by ETA and profit) whose liquidation calldata is kept ready in Redis. 50 covers the users
    # that can become liquidatable within a few blocks on Base without rebuilding calldata nobody will send.
    precompute_top_k: int = 50
    # One attempt per opportunity (market, user, debt, collateral) per this many seconds, across every executor
    # process on the Redis. 30 s = 15 Base blocks: longer than an attempt with all its replacements takes
    # (1 + 3 bumps x 2 blocks), so nothing retries a transaction still in flight; short enough to try again
    # when an opportunity outlives a failed attempt.
    execution_attempt_ttl_sec: int = 30
    # Liquidations sent per block, the most valuable first; the others wait for the next block (still below 1, they
    # come again). A bound on a block's gas spent on reverts, not a latency knob: every user left for the next block
    # meets a competitor one block slower in that block (`liq arena --seed 1`: with 16, a crash wave of ~100
    # crossings left its users waiting and won 52 %; with 256, 95 %). A wave of 256 plans in ~0.6 s, within a block.
    execution_max_per_block: int = 256

    # --- the executor's venue (`liq execute`; on the devnet, empty = the devnet's own) ---------------------------
    # The project's Liquidator contract (liq_pipeline/contracts/Liquidator.sol), deployed for the operator key.
    executor_liquidator: str | None = None
    # The Uniswap V2-compatible factory whose pairs the seized collateral is sold on (flash-loan mode).
    execution_dex_factory: str | None = None
    # The Liquidator holds debt assets: plan inventory mode too (repay from them, keep the collateral).
    execution_inventory: Annotated[bool, NoDecode] = False
    # The L2Pool's compact liquidationCall(bytes32,bytes32): auto = ask the Pool (it answers the compact call),
    # true / false to say so.
    execution_compact_calls: Literal["auto", "true", "false"] = "auto"
    # How a signed transaction reaches the sequencer (execution/channels.py): raw = eth_sendRawTransaction; sync =
    # eth_sendRawTransactionSync (EIP-7966: the receipt comes back with the send; Base's nodes answer it); auto =
    # sync where the node has it. raw by default: a sync send is counted accepted only after a 50 ms wait for a
    # refusal, which the raw one does not pay.
    execution_channel: Literal["raw", "sync", "auto"] = "raw"
    # The pre-confirmation lane (execution/pending_lane.py): act on a price update seen in the node's pending stream
    # (Base's Flashblocks, a mempool, the devnet's pool) before its block is sealed. auto = where the node has a
    # pending stream (said once at start either way); off = sealed blocks only.
    execution_pending_trigger: Literal["auto", "off"] = "auto"

    # --- validators: each names what is allowed, in words a user understands ---------------------------------
    @field_validator("execution_compact_calls", mode="before")
    @classmethod
    def _compact(cls, value: Any) -> str:
        text = str(value).strip().lower()
        if text == "auto":
            return text
        try:
            return "true" if parse_bool(text) else "false"
        except ValueError:
            raise ValueError(f"expected auto (ask the Pool), or {_BOOL_ALLOWED}") from None

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> str:
        text = str(value).strip().upper()
        if text not in LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
        return text

    @field_validator("execution_pending_trigger", mode="before")
    @classmethod
    def _pending_trigger(cls, value: Any) -> str:
        return _one_of(value, ("auto", "off"), "auto (act on pending price updates where the node streams them) or off")

    @field_validator("execution_channel", mode="before")
    @classmethod
    def _channel(cls, value: Any) -> str:
        return _one_of(
            value, ("raw", "sync", "auto"), "raw (eth_sendRawTransaction), sync (eth_sendRawTransactionSync) or auto"
        )

    @field_validator("borrowers_index_mode", mode="before")
    @classmethod
    def _index_mode(cls, value: Any) -> str:
        return _one_of(value, ("memory", "redis"), "memory or redis")

    @field_validator(
        "predictive_enabled",
        "predictive_volatility_scaling",
        "redis_enable_pipelining",
        "execution_enabled",
        "execution_inventory",
        mode="before",
    )
    @classmethod
    def _bools(cls, value: Any) -> bool:
        return _strict_bool(value)

    @field_validator(*_INT_RULES, mode="before")
    @classmethod
    def _whole_numbers(cls, value: Any, info: ValidationInfo) -> int:
        low, high, what = _INT_RULES[info.field_name]
        return _int_in(value, low, high, what)

    @field_validator(*_FLOAT_RULES, mode="before")
    @classmethod
    def _numbers(cls, value: Any, info: ValidationInfo) -> float:
        low, high, what = _FLOAT_RULES[info.field_name]
        return _float_in(value, low, high, what)

    @field_validator("metrics_host", mode="before")
    @classmethod
    def _metrics_host(cls, value: Any) -> str:
        text = str(value).strip()
        if not re.fullmatch(r"[0-9A-Za-z.:\-\[\]]+", text):
            raise ValueError("expected a host name or IP address to bind (127.0.0.1 keeps it local)")
        return text

    @field_validator("alert_webhook_url", mode="before")
    @classmethod
    def _webhook(cls, value: Any) -> Any:
        if value is None:
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value).strip()
        if text == "":
            return None
        if not re.match(r"^https?://[^\s/]+", text):
            raise ValueError("expected an http(s):// URL, or empty for no webhook")
        return text

    @field_validator("lake_url", mode="before")
    @classmethod
    def _lake_url(cls, value: Any) -> str | None:
        if value is None or str(value).strip() == "":
            return None
        text = str(value).strip()
        bucket, _, prefix = text[5:].partition("/") if text.lower().startswith("s3://") else ("", "", "")
        prefix = prefix.strip("/")
        if (
            not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket)
            or ".." in bucket
            or any(part in ("", ".", "..") for part in prefix.split("/") if prefix)
            or re.search(r"[\s?#*\[\]{}]", prefix)
        ):
            raise ValueError(
                "expected s3://BUCKET or s3://BUCKET/PREFIX (a bucket name of 3 to 63 lower-case letters, digits, "
                "dots and hyphens; a prefix without spaces, '?', '#', glob characters or empty parts), or empty for "
                "the local folder DATA_DIR/lake"
            )
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    @field_validator("market_name", mode="before")
    @classmethod
    def _market_name(cls, value: Any) -> str | None:
        if value is None or str(value).strip() == "":
            return None
        text = str(value).strip()
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", text):
            raise ValueError(
                "expected a name of 1 to 32 lower-case letters, digits and underscores starting with a letter "
                "(it names a Dagster code location and prefixes asset keys), like base or arbitrum_v37"
            )
        return text

    @field_validator("chain_id", mode="before")
    @classmethod
    def _chain_id(cls, value: Any) -> int | None:
        if value is None or str(value).strip() == "":
            return None
        return _int_in(value, 1, 2**63 - 1, "a positive whole number (8453 for Base), or empty to ask the node")

    @field_validator("predictive_scenarios", mode="before")
    @classmethod
    def _scenarios(cls, value: Any) -> tuple[str, ...]:
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        names = tuple(str(item).strip().lower() for item in items if str(item).strip())
        unknown = [name for name in names if name not in SCENARIO_NAMES]
        if unknown or not names:
            raise ValueError(f"expected a comma-separated list of {', '.join(SCENARIO_NAMES)}")
        return tuple(dict.fromkeys(names))

    @field_validator("stable_asset_symbols", mode="before")
    @classmethod
    def _stables(cls, value: Any) -> tuple[str, ...]:
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        return tuple(str(item).strip().upper() for item in items if str(item).strip())

    @field_validator(
        "aave_addresses_provider", "multicall_address", "executor_liquidator", "execution_dex_factory", mode="before"
    )
    @classmethod
    def _address(cls, value: Any) -> str | None:
        if value is None or str(value).strip() == "":
            return None
        text = str(value).strip()
        if not _ADDRESS_RE.match(text):
            raise ValueError("expected a 0x-prefixed 20-byte hex address (42 characters)")
        mixed = text[2:] != text[2:].lower() and text[2:] != text[2:].upper()
        if mixed and not is_checksum_address(text):
            raise ValueError("expected an address with a valid EIP-55 checksum (or all lower case)")
        return to_checksum_address(text)

    @field_validator("aave_protocol_version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> str:
        text = str(value).strip().lower().removeprefix("v")
        if text.count(".") == 2:  # "3.0.1" names a patch release of 3.0
            text = text.rsplit(".", 1)[0]
        if text not in PROTOCOL_VERSIONS:
            raise ValueError(f"expected an Aave protocol version from 3.0 to 3.7 ({', '.join(PROTOCOL_VERSIONS)})")
        return text

    @field_validator("devnet_protocol_version", mode="before")
    @classmethod
    def _devnet_version(cls, value: Any) -> str:
        text = str(value).strip().lower().removeprefix("v")
        if text.count(".") == 2:
            text = text.rsplit(".", 1)[0]
        if text not in DEVNET_PROTOCOL_VERSIONS:
            raise ValueError(f"expected {' or '.join(DEVNET_PROTOCOL_VERSIONS)}: the devnet's two Aave markets")
        return text

    @field_validator("rpc_ws_url", mode="before")
    @classmethod
    def _rpc_ws(cls, value: Any) -> Any:
        if value is None:
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value).strip()
        if text == "":
            return None
        if not re.match(r"^wss?://[^\s/?#]+", text, re.IGNORECASE):
            raise ValueError("expected a ws(s):// URL of the node's websocket endpoint, or empty for RPC_URL's")
        return text

    @field_validator("rpc_url", mode="before")
    @classmethod
    def _rpc(cls, value: Any) -> Any:
        if value is None:
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value).strip()
        if text == "":
            return None
        if re.match(r"^wss?://", text, re.IGNORECASE):
            raise ValueError("expected an http(s):// URL: the client speaks JSON-RPC over HTTP only, not ws(s)://")
        if not re.match(r"^https?://[^\s/?#]+", text, re.IGNORECASE):
            raise ValueError("expected an http(s):// URL of a JSON-RPC node, or empty for the running devnet")
        return text

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis(cls, value: Any) -> Any:
        if value is None:
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value).strip()
        if text == "":
            return None
        if not re.match(r"^(rediss?://[^\s]*|unix://\S+)$", text):
            raise ValueError("expected a redis://, rediss:// or unix:// URL, or empty for the embedded server")
        return text

    @field_validator("executor_private_key", mode="before")
    @classmethod
    def _private_key(cls, value: Any) -> Any:
        if value is None:
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value).strip()
        if text == "":
            return None
        if not re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", text) or int(text.removeprefix("0x"), 16) == 0:
            raise ValueError("expected a 32-byte hex private key (64 hex digits, 0x optional), or empty")
        return text

    @field_validator("executor_keystore_password", mode="before")
    @classmethod
    def _password(cls, value: Any) -> Any:
        if value is None:
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        return None if text == "" else text  # a password's spaces are its own: not stripped

    @field_validator("executor_keystore", "executor_keystore_password_file", mode="before")
    @classmethod
    def _optional_path(cls, value: Any, info: ValidationInfo) -> Path | None:
        if value is None or str(value).strip() == "":
            return None
        if info.field_name == "executor_keystore" and info.data.get("executor_private_key") is not None:
            raise ValueError("expected empty when EXECUTOR_PRIVATE_KEY is set: one operator key, from one place")
        if info.field_name == "executor_keystore_password_file" and info.data.get("executor_keystore_password"):
            raise ValueError("expected empty when EXECUTOR_KEYSTORE_PASSWORD is set: one password, from one place")
        return Path(str(value).strip())

    def node_client(self, **options: Any) -> RpcClient:
        """A JSON-RPC client of RPC_URL with the settings' request limits (RPC_MAX_PARALLEL_POSTS); `options`: the
        client's others (retries, timeout). The caller checks that RPC_URL is set."""
        if self.rpc_url is None:
            raise ValueError("RPC_URL is not set")
        return RpcClient(self.rpc_url.get_secret_value(), max_parallel_posts=self.rpc_max_parallel_posts, **options)


def _describe(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "'**********'"
    text = str(value)
    return repr(text if len(text) <= 80 else text[:77] + "...")


# Variables whose value must never be echoed back, even when wrong.
_SECRET_FIELDS = {
    "rpc_url",
    "rpc_ws_url",
    "redis_url",
    "alert_webhook_url",
    "executor_private_key",
    "executor_keystore_password",
}


def format_validation_error(error: ValidationError) -> str:
    """One line per bad variable: VARIABLE='value' is not valid: expected ..."""
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item.get("loc") else "?"
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        shown = "(hidden)" if field in _SECRET_FIELDS else _describe(item.get("input"))
        lines.append(f"{field.upper()}={shown} is not valid: {message}")
    return "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings; raise SettingsError with a user-facing message on bad input."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(format_validation_error(error)) from None


def current_settings() -> Settings:
    """load_settings(), parsed again only when what it reads changed: the environment, the working folder, its
    .env (by its bytes, not its mtime: two writes can share a timestamp). Dagster's resources ask for the settings
    ~50 times a range (every resource call), each a pydantic parse: measured 13 ms each under cProfile, 12.8 s of a
    43 s backfill of 20 ranges."""
    global _current
    try:
        dotenv = Path(".env").read_bytes()
    except OSError:
        dotenv = None
    key = (tuple(sorted(os.environ.items())), os.getcwd(), dotenv)
    if _current is None or _current[0] != key:
        _current = (key, load_settings())
    return _current[1]


_current: tuple[tuple, Settings] | None = None


def settings_fields() -> dict[str, Any]:
    """Every setting by its environment variable name, with its default (used by the drift test and docs)."""
    return {name.upper(): info.default for name, info in Settings.model_fields.items()}


__all__ = [
    "LOG_LEVELS",
    "PROTOCOL_VERSIONS",
    "SCENARIO_NAMES",
    "Settings",
    "SettingsError",
    "load_settings",
    "parse_bool",
    "settings_fields",
]
