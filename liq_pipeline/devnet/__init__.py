"""The local devnet: anvil running the real Aave V3 contracts (npm @aave/core-v3 1.19.3, V3.0 rounding).

One module per job: `anvil` (the node process), `rpc` (raw JSON-RPC, batches), `artifacts` (hardhat artifacts and
library linking), `solc` (the devnet price feed, compiled locally), `deploy` (the market), `seed` (borrowers),
`actions` (prices, time, liquidations, ground-truth account data), `simulate` (a living market), `state_cache`
(anvil state dumps keyed by versions, borrowers and seed) and `cli` (`liq devnet ...`).
"""
