"""Acting on candidates (issue #13, being built off the default path; dry-run unless EXECUTION_ENABLED).

Modules: idempotency (one attempt per opportunity, one nonce lock per sender: Redis claims that fail closed),
gas_ladder (EIP-1559 fees from the expected profit, replacements, cancellation; pure), signer (the operator key).
docs/operations.md "Executor safety" says what each guarantees.
"""
