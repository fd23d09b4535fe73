"""Deterministic devnet actors: borrowers, the liquidity provider, liquidators.

anvil runs with --auto-impersonate, so any address may send transactions once funded with anvil_setBalance;
addresses are derived from a label, which makes a seeded market the same on every machine. One actor has a key:
the executor's operator, whose transactions are signed as on a real chain. Its key is derived from a public label,
so it is worth nothing anywhere but on a devnet (chain id 31337).
"""

from __future__ import annotations

from eth_account import Account
from eth_utils import keccak, to_checksum_address

GAS_MONEY = 1_000 * 10**18  # wei each actor gets; gas is cheap on the devnet but not free


def derived_address(label: str) -> str:
    return to_checksum_address(keccak(text=f"liq-devnet:{label}")[12:])


def borrower_address(seed: int, index: int, namespace: str = "borrower") -> str:
    """Seeded borrowers use namespace "borrower"; the simulator's newcomers use "arrival"."""
    return derived_address(f"{namespace}:{seed}:{index}")


LIQUIDITY_PROVIDER = derived_address("liquidity-provider")  # supplies the liquidity borrowers take
LIQUIDATOR = derived_address("liquidator")  # the default liquidator of `actions.liquidate`
COMPETITOR = derived_address("competitor-liquidator")  # the simulator's rival bot
OPERATOR_KEY = "0x" + keccak(text="liq-devnet:operator-key").hex()  # public on purpose: a devnet-only key
OPERATOR = Account.from_key(OPERATOR_KEY).address  # the executor's sender and the Liquidator's operator
