"""`liq execute`: the watcher with the FastPathExecutor attached, in one process (the hot path).

Every block the watcher processes, right after the engine's evaluation and before the candidates are written to
Redis (execution/hot_path.py), the executor gets the market state and the positions of the users the engine found
below HF 1: it plans, claims, verifies and, live, signs and sends; what is
in flight is followed block by block. Dry-run unless `--live` AND EXECUTION_ENABLED=true (`--live` without it is a
mistake: exit 2); the operator key is read in live mode only. Every attempt goes to Redis (`open_recorder`: the
`liquidation_executions` asset reads it) and is logged in one line at INFO; the key never is.

The venue: EXECUTOR_LIQUIDATOR (its operator, read from the contract, must be the key's address) and
EXECUTION_DEX_FACTORY; on the devnet (RPC_URL and AAVE_ADDRESSES_PROVIDER empty) they default to what `make dev`
deployed (DATA_DIR/devnet/liquidator.json).
"""

from __future__ import annotations

import logging

from ..cache.from_settings import redis_url_for
from ..cache.keys import MarketKeys
from ..chain.pending import PendingPriceStream, probe_pending, ws_url_for
from ..chain.rpc import RpcError
from ..config import Settings
from ..devnet.errors import DevnetError
from ..devnet.liquidator import load_venue
from ..execution.channels import SyncChannel, channel_kind
from ..execution.executor import ExecutorConfig, FastPathExecutor
from ..execution.gas_ladder import LadderConfig
from ..execution.hot_path import ExecutionHook
from ..execution.idempotency import AttemptGuard, NonceLock, execution_client
from ..execution.pending_lane import PendingLane
from ..execution.precompute import PrecomputeCalldata
from ..execution.records import ExecutionAttempt, open_recorder
from ..execution.signer import Signer, SignerError, load_signer
from ..execution.venue import VenueError, venue_from_chain
from ..metrics import BlockMetrics
from ..risk.blas import use_one_blas_thread
from ..watch.startup import watcher_from_settings
from . import runtime
from .watch import report, run_with_metrics

log = logging.getLogger("liq_pipeline.execute")

OPERATOR_OF = "0x570ca735"  # operator(): the Liquidator's immutable operator
MAX_UINT = 2**256 - 1  # debtToCover: as much as the Pool lets us
DECIDED = ("sent", "dry_run", "skipped")  # a decision (logged by the block hook); anything else: a settlement


def describe(attempt: ExecutionAttempt) -> str:
    cover = "all" if int(attempt.debt_to_cover) == MAX_UINT else attempt.debt_to_cover
    text = (
        f"attempt {attempt.outcome}: block {attempt.block_seen} user {attempt.user} "
        f"debt {attempt.debt_asset} collateral {attempt.collateral_asset} cover {cover} "
        f"expected ${attempt.expected_profit_usd:.2f}"
    )
    if attempt.tx_hash:
        text += f" tx {attempt.tx_hash}"
    if attempt.nonce is not None:
        text += f" nonce {attempt.nonce}"
    if attempt.block_included is not None:
        text += f" included in {attempt.block_included}"
    if attempt.realized_profit_usd is not None:
        text += f" realized ${attempt.realized_profit_usd:.2f}"
    if attempt.latency_s is not None and attempt.outcome in ("sent", "dry_run"):
        seen = "the pending price update" if attempt.trigger == "pending" else "the block"
        text += f" {attempt.latency_s * 1000:.1f} ms after {seen} was seen"
    if attempt.reason:
        text += f" ({attempt.reason})"
    return text


class LoggingRecorder:
    """The recorder, plus one INFO line for every settlement (included, reverted, lost, replaced, ...)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def record(self, attempt: ExecutionAttempt) -> None:
        if attempt.outcome not in DECIDED or attempt.replacements:
            log.info("%s", describe(attempt))
        self.inner.record(attempt)


def _venue_addresses(settings: Settings, on_devnet: bool) -> tuple[str, str, bool]:
    """EXECUTOR_LIQUIDATOR, EXECUTION_DEX_FACTORY and EXECUTION_INVENTORY; on the devnet, what is not set comes
    from DATA_DIR/devnet/liquidator.json."""
    liquidator, factory, inventory = (
        settings.executor_liquidator,
        settings.execution_dex_factory,
        settings.execution_inventory,
    )
    if on_devnet and (liquidator is None or factory is None):
        try:
            deployed = load_venue(settings.data_dir)
        except DevnetError as error:
            raise runtime.CommandError(f"{error}; or set EXECUTOR_LIQUIDATOR and EXECUTION_DEX_FACTORY") from None
        if liquidator is None:
            liquidator, inventory = deployed.liquidator, deployed.inventory or inventory
        factory = factory or deployed.dex_factory
    if liquidator is None:
        raise runtime.CommandError(
            "EXECUTOR_LIQUIDATOR is not set: expected the address of the Liquidator contract deployed for the "
            "operator key (liq_pipeline/contracts/Liquidator.sol)"
        )
    if factory is None:
        raise runtime.CommandError(
            "EXECUTION_DEX_FACTORY is not set: expected the address of a Uniswap V2-compatible factory "
            "(the seized collateral is sold on its pairs)"
        )
    return liquidator, factory, inventory


def _sync_channel(settings: Settings, rpc) -> SyncChannel | None:
    """A SyncChannel when EXECUTION_CHANNEL asks for eth_sendRawTransactionSync and the node has it."""
    try:
        kind = channel_kind(settings.execution_channel, rpc)
    except ValueError as error:
        raise runtime.CommandError(str(error)) from None
    return SyncChannel(rpc.url) if kind == "sync" else None


def _pending_lane(
    settings: Settings, watcher, executor, on_attempt, on_devnet: bool
) -> tuple[PendingLane, PendingPriceStream] | None:
    """The pre-confirmation lane on the node's pending stream (EXECUTION_PENDING_TRIGGER=auto), or None: sealed
    blocks only. What the node offers is said once, either way. On the devnet (whose simulator tips its price
    updates at the top of each block, as a sent Flashblock orders them first) the lane simulates on the node's
    pending state; on another chain's mempool, behind the updates' own calls (docs/operations.md)."""
    if settings.execution_pending_trigger == "off":
        log.info("pending trigger off (EXECUTION_PENDING_TRIGGER=off): acting on sealed blocks only")
        return None
    rpc_url = settings.rpc_url.get_secret_value() if settings.rpc_url is not None else watcher.rpc.url
    ws_url = ws_url_for(rpc_url, settings.rpc_ws_url.get_secret_value() if settings.rpc_ws_url else None)
    found = probe_pending(watcher.rpc, ws_url)
    log.info("%s", found.line())
    if found.stream is None:
        return None
    lane = PendingLane(executor, watcher.tracker, watcher.lock, on_attempt, pending_state=on_devnet).start()
    stream = PendingPriceStream(ws_url, found.stream, lane.feeds, lane.submit)
    if not stream.start():  # its thread goes on trying (one warning when it cannot connect, one when it is back)
        log.warning("the pending stream did not subscribe within 5 s: acting on sealed blocks until it does")
    log.info("pending trigger on: %d price feeds followed before their blocks are sealed", len(lane.feeds))
    return lane, stream


def _operator_of(rpc, liquidator: str) -> str:
    try:
        answer = rpc.call("eth_call", {"to": liquidator, "data": OPERATOR_OF}, "latest")
    except RpcError:
        answer = None
    if not isinstance(answer, str) or len(answer) < 66:
        raise runtime.CommandError(f"EXECUTOR_LIQUIDATOR={liquidator} does not answer operator(): not a Liquidator")
    return "0x" + answer[-40:]


def _signer(settings: Settings, chain_id: int, operator: str, rpc) -> Signer:
    """The operator key (live mode only): one line naming its variable when it is missing, unusable, not the
    Liquidator's operator, or holds no gas money."""
    try:
        signer = load_signer(settings, chain_id)
    except SignerError as error:
        raise runtime.CommandError(str(error)) from None
    variable = "EXECUTOR_PRIVATE_KEY" if settings.executor_private_key is not None else "EXECUTOR_KEYSTORE"
    if signer.address.lower() != operator.lower():
        raise runtime.CommandError(
            f"{variable} is the key of {signer.address}, but the Liquidator's operator is {operator}: "
            "set it to the operator's key"
        )
    if int(rpc.call("eth_getBalance", signer.address, "latest"), 16) == 0:
        raise runtime.CommandError(
            f"{variable} is the key of {signer.address}, which holds no native token to pay gas with: fund it"
        )
    return signer


def main(max_blocks: int, live: bool) -> None:
    base = runtime.settings()
    if live and not base.execution_enabled:
        raise runtime.CommandError(
            "--live sends real transactions and needs EXECUTION_ENABLED=true as well; "
            "without it, run `liq execute --dry-run`"
        )
    on_devnet = base.rpc_url is None and base.aave_addresses_provider is None
    settings = runtime.node_settings(base)
    liquidator, factory, inventory = _venue_addresses(settings, on_devnet)
    # CHAIN_ID, a node that answers, the Liquidator and (live) a key that can send: before anything starts, so
    # each mistake is one line
    rpc = runtime.connect(settings)
    try:
        operator = _operator_of(rpc, liquidator)
        signer = _signer(settings, rpc.quantity("eth_chainId"), operator, rpc) if live else None
    finally:
        rpc.close()
    use_one_blas_thread()
    watcher = watcher_from_settings(settings, use_cache=True)
    try:
        market = watcher.tracker.market
        try:
            venue = venue_from_chain(
                watcher.rpc,
                market,
                liquidator,
                operator,
                factory,
                inventory=inventory,
                compact=settings.execution_compact_calls,
            )
        except VenueError as error:
            raise runtime.CommandError(str(error)) from None
        # the hot path's Redis timeout: a hung Redis costs the first block of its outage this much, then claims are
        # refused without a round trip until Redis answers (execution/idempotency.py): fail closed, no send
        timeout = settings.redis_hot_path_timeout_ms / 1000.0
        client = execution_client(redis_url_for(settings.redis_url, settings.data_dir), timeout=timeout)
        keys = MarketKeys.for_market(market.chain_id, market.pool)
        watcher.metrics = BlockMetrics()
        recorder = open_recorder(settings, metrics=watcher.metrics.execution)  # on /metrics
        executor = FastPathExecutor(
            watcher.rpc,
            keys,
            venue,
            AttemptGuard(client, settings.execution_attempt_ttl_sec, owner=f"execute-{operator[2:10].lower()}"),
            ExecutorConfig(
                live=live,
                min_profit_usd=settings.execution_min_profit_usd,
                ladder=LadderConfig.from_settings(settings),
                max_per_block=settings.execution_max_per_block,
            ),
            signer=signer,
            nonce_lock=NonceLock(client, market.chain_id, operator) if live else None,
            recorder=LoggingRecorder(recorder),
            channel=_sync_channel(settings, watcher.rpc) if live else None,  # None: eth_sendRawTransaction
        )
    except BaseException:
        watcher.rpc.close()
        raise
    if live:
        log.info("LIVE: sending transactions from %s through the Liquidator %s", operator, liquidator)
    else:
        why = "" if base.execution_enabled else " (EXECUTION_ENABLED=false)"
        log.info("dry-run%s: attempts are logged and recorded, nothing is signed or sent", why)
    log.info(
        "venue: %d pairs of %s, %s calls, flash premium %d bps, inventory %s",
        len(venue.pairs),
        factory,
        "compact L2Pool" if venue.compact else "standard Pool",
        venue.flash_premium_bps,
        "on" if venue.inventory else "off",
    )
    # the executor right after the evaluation, before the candidates are written (execution/hot_path.py)
    precompute = PrecomputeCalldata(
        client, keys, top_k=settings.precompute_top_k, compact=venue.compact, liquidator=venue.liquidator
    )
    hook = ExecutionHook(
        executor, watcher.tracker, on_attempt=lambda a: log.info("%s", describe(a)), precompute=precompute
    )
    watcher.on_read, watcher.on_evaluated = hook.fast, hook

    def after_write(record) -> None:  # the block's line once it is done, then the precompute for the next blocks
        report(record)
        hook.after_write(record)

    watcher.on_block = after_write
    pending = _pending_lane(settings, watcher, executor, lambda a: log.info("%s", describe(a)), on_devnet)
    try:
        run_with_metrics(watcher, settings, max_blocks)  # /metrics: the watcher's and the executor's
    finally:
        if pending is not None:
            pending[1].stop()
            pending[0].stop()
        executor.channel.close()
        recorder.close()
