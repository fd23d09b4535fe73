"""Transactions the devnet way: explicit nonce and gas, sent as JSON-RPC batches, mined by hand, then checked.

anvil runs with automine off while we work (one `evm_mine` per batch keeps throughput flat; with automine it
decays as the chain grows). Within one mined block a sender's transactions run in nonce order, so a user's
approve -> supply -> borrow may share a block; transactions of DIFFERENT senders that depend on each other must
go in separate mined batches. Every mined block is checked: all transactions included, none reverted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import DevnetError
from .rpc import Rpc, RpcError

CALL_GAS = 3_000_000  # explicit: anvil's own estimate left some Aave borrows out of gas
CREATE_GAS = 15_000_000  # Pool / PoolConfigurator creation code is ~22-24 KB
ETH = 10**18
# The devnet's actors tip like Base's ordinary traffic (~0.001 gwei), not anvil's default 1 gwei: a liquidator's
# priority fee then orders it ahead of them as it would on Base (the executor's comes from its gas ladder).
PRIORITY_FEE = 10**6


@dataclass
class Tx:
    sender: str
    to: str | None
    data: str
    gas: int = CALL_GAS
    value: int = 0
    label: str = ""  # what it does, for error messages
    priority_fee: int = PRIORITY_FEE  # wei per gas: anvil orders a block's transactions by it, as Base does

    def params(self, nonce: int, base_fee: int | None = None) -> dict[str, Any]:
        tx = {
            "from": self.sender,
            "data": self.data,
            "gas": hex(self.gas),
            "nonce": hex(nonce),
            "maxPriorityFeePerGas": hex(self.priority_fee),
        }
        if base_fee is not None:
            # anvil orders a block by max fee, Base's sequencer by the tip: a max fee just above what the next
            # block can charge (the base fee rises at most 1/8 a block) makes the two orders agree (anvil's own
            # default, base fee + 1 gwei, put these ahead of a liquidator tipping less than 1 gwei)
            tx["maxFeePerGas"] = hex(base_fee + base_fee // 8 + 1 + self.priority_fee)
        if self.to is not None:
            tx["to"] = self.to
        if self.value:
            tx["value"] = hex(self.value)
        return tx


@dataclass
class Executed:
    """One mined batch: its block, and per transaction (in the order sent) the hash and whether it succeeded."""

    block: int
    hashes: list[str]
    ok: list[bool]
    logs: list[dict[str, Any]]


class TxFailed(DevnetError):
    """A devnet transaction reverted or was not mined; the label says which."""


@dataclass
class Nonces:
    """Local nonce bookkeeping: one eth_getTransactionCount per sender, then counted here."""

    rpc: Rpc
    known: dict[str, int] = field(default_factory=dict)

    def prefetch(self, senders: Sequence[str]) -> None:
        missing = [s for s in dict.fromkeys(s.lower() for s in senders) if s not in self.known]
        if missing:
            counts = self.rpc.batch([("eth_getTransactionCount", [s, "pending"]) for s in missing])
            self.known.update({s: int(c, 16) for s, c in zip(missing, counts, strict=True)})

    def take(self, sender: str) -> int:
        key = sender.lower()
        if key not in self.known:
            self.prefetch([key])
        nonce = self.known[key]
        self.known[key] = nonce + 1
        return nonce


class Chain:
    """Sends, mines and checks. One per RPC connection; keeps the node's mining mode tidy."""

    def __init__(self, rpc: Rpc):
        self.rpc = rpc
        self.nonces = Nonces(rpc)

    # -- mining ---------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def manual_mining(self) -> Iterator[None]:
        """Automine off inside the block; restored (and any pending transactions mined) on exit."""
        was_auto = bool(self.rpc.call("anvil_getAutomine"))
        self.rpc.call("evm_setAutomine", False)
        try:
            yield
        finally:
            if was_auto:
                if int(self.rpc.call("txpool_status")["pending"], 16):
                    self.rpc.call("evm_mine")
                self.rpc.call("evm_setAutomine", True)

    def mine(self, timestamp: int | None = None) -> int:
        """Mine one block (at `timestamp` if given); returns its number."""
        if timestamp is not None:
            self.rpc.call("evm_setNextBlockTimestamp", hex(timestamp))
        self.rpc.call("evm_mine")
        return self.block_number()

    def set_next_timestamp(self, timestamp: int) -> None:
        """Date the next block ahead of mining it: anvil's "pending" state (eth_call and eth_getBlockByNumber on
        the pending tag, which include the pool's transactions) then has the timestamp of the block it previews."""
        self.rpc.call("evm_setNextBlockTimestamp", hex(timestamp))

    def block_number(self) -> int:
        return int(self.rpc.call("eth_blockNumber"), 16)

    def latest_timestamp(self) -> int:
        return int(self.rpc.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)

    # -- sending --------------------------------------------------------------------------------------------

    def send(self, txs: Sequence[Tx]) -> list[str]:
        """Queue transactions (automine must be off for them to share a block). Returns their hashes."""
        if not txs:
            return []
        latest = self.rpc.call("eth_getBlockByNumber", "latest", False) or {}
        base_fee = int(latest.get("baseFeePerGas", "0x0"), 16)
        requests = [("eth_sendTransaction", [tx.params(self.nonces.take(tx.sender), base_fee)]) for tx in txs]
        answers = self.rpc.batch(requests, raise_on_error=False)
        failed = [(tx, a) for tx, a in zip(txs, answers, strict=True) if isinstance(a, RpcError)]
        if failed:
            tx, error = failed[0]
            raise TxFailed(f"{len(failed)} transaction(s) refused, first: {tx.label or tx.data[:10]}: {error}")
        return answers

    def execute(self, txs: Sequence[Tx], timestamp: int | None = None, *, allow_revert: bool = False) -> Executed:
        """Send, mine one block, and check every transaction. Needs automine off (see manual_mining).

        A reverted transaction raises TxFailed unless allow_revert (then the caller reads `ok`). Checking uses the
        block's logs: a transaction that emitted a log succeeded. anvil builds a receipt in ~2 ms, so receipts
        are only fetched for the rare transactions without logs.
        """
        if not txs:
            return Executed(self.block_number(), [], [], [])
        hashes = self.send(txs)
        return self.mine_and_check(txs, hashes, timestamp, allow_revert=allow_revert)

    def mine_and_check(
        self, txs: Sequence[Tx], hashes: Sequence[str], timestamp: int | None = None, *, allow_revert: bool = False
    ) -> Executed:
        """The second half of `execute`, for transactions sent in several `send` calls (the simulator's paced
        blocks): mine one block (even with nothing of ours in it) and check `txs` (sent as `hashes`, in that
        order). Whatever else the pool held is mined too and not checked; `logs` are the whole block's."""
        number = self.mine(timestamp)
        block = self.rpc.call("eth_getBlockByNumber", hex(number), False)
        included = set(block["transactions"])
        missing = [tx for tx, h in zip(txs, hashes, strict=True) if h not in included]
        if missing:
            pending = int(self.rpc.call("txpool_status")["pending"], 16)
            raise TxFailed(
                f"{len(missing)} transaction(s) not mined in block {number} ({pending} pending; first: "
                f"{missing[0].label}); is automine on, or the block gas limit too low?"
            )
        logs = self.rpc.call("eth_getLogs", {"blockHash": block["hash"]})
        with_logs = {log["transactionHash"] for log in logs}
        silent = [h for h in hashes if h not in with_logs]
        status = {h: True for h in with_logs}
        if silent:
            receipts = self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in silent])
            status.update({h: r["status"] == "0x1" for h, r in zip(silent, receipts, strict=True)})
        ok = [status[h] for h in hashes]
        if not allow_revert and not all(ok):
            reverted = [tx for tx, fine in zip(txs, ok, strict=True) if not fine]
            labels = ", ".join(tx.label or tx.data[:10] for tx in reverted[:5])
            raise TxFailed(f"{len(reverted)} transaction(s) reverted in block {number}: {labels}")
        return Executed(number, list(hashes), ok, logs)

    def set_balances(self, addresses: Sequence[str], wei: int) -> None:
        self.rpc.batch([("anvil_setBalance", [a, hex(wei)]) for a in addresses])
