"""The Parquet lake: one file per dataset per block range (see docs/lake.md).

    partitions.py   block-range keys `{start:012d}-{end:012d}`, finished ranges, ranges covering [a, b]
    store.py        Lake(root): paths, atomic idempotent writes, listing, scans, missing ranges
    objects.py      the lake on object storage (root = s3://bucket/prefix, LAKE_URL): obstore, conditional-PUT lock
    datasets/       one module per dataset: SCHEMA, SPEC and build_<dataset>(rpc, market, rules, start, end, ...)
    backfill.py     the chain datasets of one range in dependency order

Nothing is imported here: a Dagster run process imports only what its asset needs.
"""
