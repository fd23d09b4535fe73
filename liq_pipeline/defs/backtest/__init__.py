"""The backtest (issue #14) as Dagster assets over the block-range partitions: `crossings`, `predictions`,
`backtest_report` (its checks, its plots in the UI), and a schedule for finished ranges."""
