"""The first block whose STATE a node serves.

Logs and headers are kept by every node, state is not: a pruned node (geth, reth, erigon with pruning; a Base
provider's full node) and the devnet loaded from a state dump answer state reads (eth_call, eth_getCode,
eth_getBalance) only from some block on, each with its own error ("missing trie node", "state history pruned",
anvil's `BlockOutOfRangeError`). Nodes have no common way to say where that block is, so it is found by bisection:
eth_getCode of an address at a block answers (code or "0x") where the node holds that block's state and fails
where it does not. States held are a suffix of the chain (from the first block with state up to the head), so
~log2(head) calls find the first: 25 on Base.
"""

from __future__ import annotations

from .rpc import TRANSIENT_CODES, NodeUnavailable, RpcClient, RpcError


class NoStateError(RpcError):
    """The node serves no state at its head: nothing can be read from it at any block."""


def has_state(rpc: RpcClient, address: str, block: int) -> bool:
    """Whether the node answers a state read of `address` at `block`. A node that cannot be reached, or keeps
    answering a transient error (rate limit), raises NodeUnavailable rather than being taken for a pruned one."""
    try:
        answer = rpc.call("eth_getCode", address, hex(block))
    except RpcError as error:
        if error.code in TRANSIENT_CODES:
            raise NodeUnavailable(f"eth_getCode of {address} at block {block}: {error} (after retries)") from None
        return False
    return isinstance(answer, str) and answer.startswith("0x")


def first_block_with_state(
    rpc: RpcClient, address: str, low: int = 0, head: int | None = None, guess: int | None = None
) -> int:
    """The first block >= `low` whose state the node serves (`low` itself on an archive node: one call).

    `address`: any account (a contract of the market, e.g. its PoolAddressesProvider). `low`: the first block
    that matters (STATE_HISTORY_FROM_BLOCK). `guess`: an earlier answer, confirmed in two calls (state there, none
    just before) instead of a bisection. NoStateError when even the head has no state."""
    if head is None:
        head = rpc.quantity("eth_blockNumber")
    low = max(0, min(low, head))
    if has_state(rpc, address, low):
        return low
    confirmed = guess is not None and low < guess <= head and has_state(rpc, address, guess)
    if confirmed and not has_state(rpc, address, guess - 1):
        return guess
    if not has_state(rpc, address, head):
        raise NoStateError(
            "eth_getCode", {"message": f"the node serves no state even at its head (block {head}, {address})"}
        )
    without, with_state = low, head  # invariant: no state at `without`, state at `with_state`
    while with_state - without > 1:
        middle = (without + with_state) // 2
        if has_state(rpc, address, middle):
            with_state = middle
        else:
            without = middle
    return with_state
