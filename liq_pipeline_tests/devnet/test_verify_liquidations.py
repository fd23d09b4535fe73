"""`liq devnet verify-liquidations` as a user runs it: a fresh devnet per version, predicted liquidations sent to the
real Pool (V3.0) and L2Pool (V3.6), every one compared exactly, one JSON object, exit code 0."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eth_utils import keccak

from liq_pipeline.chain.rpc import RpcError
from liq_pipeline.devnet.abi import call_data
from liq_pipeline.devnet.liquidation_check import revert_reason, summary_counts
from liq_pipeline.risk import liquidation as L
from liq_pipeline_tests.fixtures.devnet import BEING_WRITTEN

FRESH = "verify-liquidations"
CASES_30 = {"half_close", "full_close_hf_le_095", "capped_collateral", "emode_bonus"}
CASES_30 |= {"receive_a_token_true", "receive_a_token_false"}
CASES_36 = CASES_30 | {"full_close_under_2000", "dust_reverts", "dust_exceptions", "deficits"}


def _liq(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATA_DIR", "RPC_URL", "DEVNET_PROTOCOL_VERSION")}
    return subprocess.run(
        [sys.executable, "-m", "liq_pipeline.commands.cli", "devnet", "verify-liquidations", *args],
        capture_output=True,
        text=True,
        env=clean | {"DATA_DIR": str(data_dir)},
        cwd=data_dir,
        timeout=180,
        check=False,
    )


def _with_build(source: Path, data_dir: Path) -> Path:
    """The fresh devnet's data dir shares the compiled contracts only (no cold compile in the command)."""
    build = source / "devnet" / "build"
    if build.is_dir():
        shutil.copytree(build, data_dir / FRESH / "devnet" / "build", dirs_exist_ok=True, ignore=BEING_WRITTEN)
    return data_dir


def _check(run: subprocess.CompletedProcess[str], version: str, cases: set[str]) -> dict:
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert result["protocol_version"] == version
    assert result["mismatches"] == 0 and result["mismatch_examples"] == []
    assert result["liquidations"] >= 40 and result["reverts_predicted"] >= 3
    assert result["attempts"] == result["liquidations"] + result["reverts_predicted"]
    assert {k for k, v in result["cases"].items() if v} == cases, result["cases"]
    assert result["seconds"] > 0
    return result


@pytest.mark.integration
@pytest.mark.slow
def test_verify_liquidations_v30(devnet_data_dir, tmp_path):
    data_dir = _with_build(devnet_data_dir, tmp_path)
    run = _liq(["--protocol", "3.0", "--liquidations", "40", "--borrowers", "150", "--json"], data_dir)
    result = _check(run, "3.0", CASES_30)
    assert result["cases"]["deficits"] is None and result["cases"]["dust_reverts"] is None  # not in V3.0
    # by name; the V3.0 Pool reverts with the codes ('45', '46', '47'), compared per attempt
    validation = {L.HF_NOT_BELOW_THRESHOLD, L.COLLATERAL_CANNOT_BE_LIQUIDATED, L.NOT_BORROWED}
    assert validation <= set(result["reverts_by_reason"])


@pytest.mark.integration
@pytest.mark.slow
def test_verify_liquidations_v36(v36_build, devnet_v36_data_dir, tmp_path):
    data_dir = _with_build(devnet_v36_data_dir, tmp_path)
    run = _liq(["--protocol", "3.6", "--liquidations", "40", "--borrowers", "120", "--json"], data_dir)
    result = _check(run, "3.6", CASES_36)
    assert {L.MUST_NOT_LEAVE_DUST, L.SELF_LIQUIDATION, L.HF_NOT_BELOW_THRESHOLD} <= set(result["reverts_by_reason"])


def test_running_takes_no_protocol(tmp_path):
    run = _liq(["--running", "--protocol", "3.6"], tmp_path)
    assert run.returncode == 2 and "--protocol" in run.stderr and "Traceback" not in run.stderr


def test_revert_reasons_are_decoded():
    custom = "0x" + keccak(text="MustNotLeaveDust()").hex()[:8]
    assert revert_reason(RpcError("eth_call", {"message": "reverted", "data": custom})) == L.MUST_NOT_LEAVE_DUST
    error_string = "0x08c379a0" + call_data("f(string)", "45")[10:]
    assert revert_reason(RpcError("eth_call", {"message": "reverted", "data": {"data": error_string}})) == "45"
    assert summary_counts("3.0")["deficits"] is None and summary_counts("3.6")["deficits"] == 0
