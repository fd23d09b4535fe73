"""A real materialization written to the lake on object storage (moto_server on 127.0.0.1): range A of the
package's devnet history built again into an s3:// lake gives objects byte-identical to the local lake's files."""

from __future__ import annotations

import pytest

from liq_pipeline.lake.backfill import CHAIN_DATASETS, materialize_range
from liq_pipeline.lake.open import lake_at
from liq_pipeline_tests.lake import moto_s3 as fixtures
from liq_pipeline_tests.lake.conftest import SIZE

pytestmark = pytest.mark.integration
moto_s3, s3_env = fixtures.moto_s3, fixtures.s3_env  # the S3 server (session) and a lake URL per test


def test_a_devnet_range_materialized_on_s3_is_byte_identical_to_the_local_lake(history, s3_env):
    local = history.lake
    remote = lake_at(s3_env, range_size=SIZE)
    earlier = [r for r in local.ranges("pool_events") if r.end < history.a.start]
    assert earlier, "the seeded borrowers' events come from the ranges before A"
    for block_range in earlier:  # what borrower_snapshots reads its known users from: copied as they are
        remote.path("pool_events", block_range).write_bytes(local.path("pool_events", block_range).read_bytes())

    report = materialize_range(remote, history.rpc, history.market, history.rules, history.a, CHAIN_DATASETS)

    assert report.skipped == [] and report.rows["borrower_snapshots"] > 0
    for dataset in CHAIN_DATASETS:
        assert remote.ranges(dataset)[-1] == history.a
        stored = remote.path(dataset, history.a).read_bytes()
        assert stored == local.path(dataset, history.a).read_bytes(), f"{dataset}: the object differs from the file"
        assert remote.read(dataset, history.a).equals(local.read(dataset, history.a))
    assert (
        remote.scan("pool_events", 0, history.a.end, complete=True)
        .collect()
        .equals(local.scan("pool_events", 0, history.a.end, complete=True).collect())
    )
