"""The V3.6 market as a devnet: `liq devnet up --protocol 3.6` through the state cache, bulk seeding on the
categories' bitmaps, and `liq devnet verify` (engine vs getUserAccountData, bit for bit) on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from liq_pipeline.commands.verify import run_verify
from liq_pipeline.config import SettingsError, load_settings
from liq_pipeline.devnet import anvil, lifecycle, protocols, state_cache
from liq_pipeline.devnet.actions import account_data, user_emodes, user_reserves
from liq_pipeline.devnet.borrowers import BorrowerRecord
from liq_pipeline.devnet.errors import DevnetError
from liq_pipeline.devnet.paths import borrowers_json_path
from liq_pipeline.devnet.v36.build import build_key
from liq_pipeline.devnet.v36.bulk import plan_portfolios, read_shape
from liq_pipeline.devnet.v36.spec import EMODES
from liq_pipeline_tests.commands.clirun import at_once
from liq_pipeline_tests.fixtures.devnet_v36 import share_builds

WAD = 10**18


@pytest.fixture
def v36_data_dir(v36_build, tmp_path: Path) -> Path:
    """A fresh data dir sharing only the compiled contracts: no cold compile."""
    share_builds(v36_build, tmp_path)
    return tmp_path


def test_protocol_names_are_checked():
    assert protocols.check_protocol(None) == "3.6"  # the default
    assert protocols.check_protocol("v3.6") == protocols.check_protocol("3.6.0") == "3.6"
    with pytest.raises(DevnetError, match=r"3\.0 or 3\.6"):
        protocols.check_protocol("3.5")


def test_devnet_protocol_version_setting(clean_env, monkeypatch):
    assert load_settings().devnet_protocol_version == "3.6"  # the default: the closest to Base
    monkeypatch.setenv("DEVNET_PROTOCOL_VERSION", "V3.6")
    assert load_settings().devnet_protocol_version == "3.6"
    monkeypatch.setenv("DEVNET_PROTOCOL_VERSION", "3.5")
    with pytest.raises(SettingsError, match="DEVNET_PROTOCOL_VERSION") as error:
        load_settings()
    assert "3.0 or 3.6" in str(error.value) and str(error.value).count("\n") == 0


@pytest.mark.integration  # reads the installed npm packages' versions
def test_cache_keys_never_mix_the_two_markets():
    v30, v36 = state_cache.cache_key(100, 1, "3.0"), state_cache.cache_key(100, 1)  # 3.6: the default
    assert "_p3.0_n100_s1_" in v30 and v30.startswith("aave-1.19.3_")
    assert "_p3.6_n100_s1_" in v36 and build_key() in v36
    assert state_cache.cache_key(100, 1, "3.0") == v30 != v36


def _liq(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATA_DIR", "RPC_URL", "DEVNET_PROTOCOL_VERSION")}
    return subprocess.run(
        [sys.executable, "-m", "liq_pipeline.commands.cli", "devnet", *args],
        capture_output=True,
        text=True,
        env=clean | {"DATA_DIR": str(data_dir)} | env,
        cwd=data_dir,
        timeout=180,
        check=False,
    )


@pytest.mark.integration
@pytest.mark.slow
def test_cli_up_status_seed_down_on_v36(v36_data_dir):
    """Commands that only read (or are refused before they touch anything) run beside the ones that change the
    devnet; those that change it keep their order: up, seed, price, advance, down."""
    data_dir = v36_data_dir
    port = anvil.free_port()
    # `up` with a bad protocol or setting is refused before it looks at the data dir: at once with the real `up`
    bad, unset, up = at_once(
        lambda: _liq(["up", "--protocol", "3.5"], data_dir),
        lambda: _liq(["up"], data_dir, DEVNET_PROTOCOL_VERSION="2.0"),
        lambda: _liq(["up", "--protocol", "3.6", "--port", str(port), "--borrowers", "40", "--seed", "2"], data_dir),
    )
    try:
        assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "3.0 or 3.6" in bad.stderr, bad.stderr
        assert unset.returncode == 2, unset.stderr
        assert "DEVNET_PROTOCOL_VERSION" in unset.stderr and "Traceback" not in unset.stderr, unset.stderr
        assert up.returncode == 0, up.stderr
        assert f"http://127.0.0.1:{port}" in up.stdout and "Aave V3.6" in up.stdout
        market = json.loads((data_dir / "devnet" / "market.json").read_text())
        assert market["protocol_version"] == "3.6" and len(market["reserves"]) == 6
        extras = json.loads((data_dir / "devnet" / "v36.json").read_text())
        assert extras["build_key"] == build_key() and len(extras["emodes"]) == len(EMODES)
        assert len(list((data_dir / "devnet" / "cache").glob("*_p3.6_n40_s2_v*/state.json.gz"))) == 1

        # a second `up` is refused (it only reads the pid file) while the devnet is seeded
        again, seeded = at_once(
            lambda: _liq(["up", "--port", str(anvil.free_port())], data_dir),
            lambda: _liq(["seed", "--borrowers", "20", "--seed", "3"], data_dir),
        )
        assert again.returncode == 2 and "already runs" in again.stderr and "Traceback" not in again.stderr
        assert seeded.returncode == 0, seeded.stderr

        def price_then_advance() -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
            return _liq(["price", "wstETH", "3300"], data_dir), _liq(["advance", "60"], data_dir)

        # `status` reads what seeding left (nothing price or time changes): beside price and advance
        (moved, advanced), status = at_once(price_then_advance, lambda: _liq(["status", "--json"], data_dir))
        assert moved.returncode == 0 and "wstETH = 3300.0 USD" in moved.stdout, moved.stderr
        assert advanced.returncode == 0, advanced.stderr
        assert status.returncode == 0, status.stderr
        info = json.loads(status.stdout)
        assert info["protocol_version"] == "3.6" and info["borrowers"] == 60
        assert info["rpc_url"] == f"http://127.0.0.1:{port}" and "wstETH" in info["reserves"]
    finally:
        down = _liq(["down"], data_dir)
    assert down.returncode == 0, down.stderr
    assert anvil.port_is_free(port)  # the node is gone
    after = _liq(["status"], data_dir)
    assert after.returncode == 2 and after.stderr.count("\n") == 1 and "liq devnet up" in after.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_seeded_v36_borrowers_and_verify(v36_data_dir):
    """300 borrowers on V3.6 (bitmaps, the LT-0 asset, near-1, 1-wei debts, dust, whales), then `verify` on the
    running devnet: every HF from the reader + engine equals getUserAccountData after a 12 % shock."""
    data_dir = v36_data_dir
    up = lifecycle.up(data_dir, borrowers=300, seed=11, protocol="3.6")
    try:
        market = up.market
        assert market.protocol_version == "3.6"
        with lifecycle.attach(data_dir)[0] as rpc:
            users = BorrowerRecord.load(borrowers_json_path(data_dir)).users
            prices = {r.symbol: r.initial_price for r in market.reserves}
            shape = read_shape(rpc, market)
            plans = {p.user: p for p in plan_portfolios(market, shape, prices, 300, 11)}
            assert list(plans) == users
            accounts = dict(zip(users, account_data(rpc, market.pool, users), strict=True))
            emodes = dict(zip(users, user_emodes(rpc, market.pool, users), strict=True))
            legs = dict(zip(users, user_reserves(rpc, market, users), strict=True))

        assert all(accounts[u].total_debt_base > 0 for u in users), "every borrow went through"
        assert Counter(emodes.values()).keys() == {0, *(e.category_id for e in EMODES)}
        for user in users:
            category = shape.category(emodes[user]) if emodes[user] else None
            if category is not None:  # borrows only what the category's borrowable bitmap lists
                assert {s for s, leg in legs[user].items() if leg.variable_debt} <= set(category.borrowable)
        lt0_collateral = [u for u in users if legs[u].get("wstETH") and legs[u]["wstETH"].collateral_enabled]
        assert lt0_collateral and all(emodes[u] in (2, 3) for u in lt0_collateral)
        held_not_collateral = [
            u for u in users if emodes[u] == 0 and legs[u].get("wstETH") and legs[u]["wstETH"].a_token_balance
        ]
        assert held_not_collateral and not any(legs[u]["wstETH"].collateral_enabled for u in held_not_collateral)
        kinds = Counter(p.kind for p in plans.values())
        assert kinds["edge"] >= 5 and kinds["one_wei"] >= 2 and kinds["dust"] and kinds["large"]
        assert sum(accounts[u].total_debt_base == 1 for u in users) >= 2  # 1 wei -> 1 base unit, rounded up
        edge = [accounts[u].health_factor for u in users if plans[u].kind == "edge"]
        assert all(abs(hf - WAD) < WAD // 10**6 for hf in edge), "edge users sit within 1e-6 of HF = 1"
        collateral_usd = [a.total_collateral_base / 1e8 for a in accounts.values()]
        assert min(collateral_usd) < 50 and max(collateral_usd) > 1_000_000

        result = run_verify(data_dir, borrowers=100, seed=5, use_running=True)
    finally:
        lifecycle.down(data_dir)
    assert result["protocol_version"] == "3.6"
    assert result["compared"] == result["borrowers"] >= 400
    assert result["flips"] == 0 and result["max_rel_err"] == 0.0
    assert result["hf_bit_exact"] == result["compared"]
    assert result["liquidatable_chain"] > 0 and result["emode_users"] > 50
