"""risk.versions: each rule switches at the release that changed it (docs/predictive-hf.md §9 names the sources)."""

from __future__ import annotations

import pytest

from liq_pipeline.risk.versions import rules_for

# rule -> the first minor version where it is True (None: True up to `last`, then False)
SWITCHES = {
    "virtual_accounting": 1,
    "liquidation_grace_period": 1,
    "small_position_full_close": 3,
    "dust_rule_and_deficits": 3,
    "compounding_x_form": 4,
    "custom_errors": 4,
    "token_math": 5,
    "counts_zero_threshold_collateral": 6,
    "split_rounding_floor_ceil": 7,
}
UNTIL = {  # rule -> the last minor version where it is True
    "emode_price_source": 1,
    "counts_stable_debt": 1,
    "floors_average_threshold": 4,
    "liquidated_atokens_auto_collateral": 5,
    "isolation_and_siloed": 6,
}


@pytest.mark.parametrize("minor", range(8))
def test_each_rule_switches_at_its_release(minor):
    rules = rules_for(f"3.{minor}")
    for name, first in SWITCHES.items():
        assert getattr(rules, name) is (minor >= first), (name, minor)
    for name, last in UNTIL.items():
        assert getattr(rules, name) is (minor <= last), (name, minor)


def test_every_rule_is_in_one_of_the_tables():
    fields = set(rules_for("3.7").__dataclass_fields__) - {"version"}
    assert fields == set(SWITCHES) | set(UNTIL)


def test_v37_has_no_isolation_mode():
    assert rules_for("3.6").isolation_and_siloed and not rules_for("3.7").isolation_and_siloed


@pytest.mark.parametrize("version", ["2.0", "3.8", "4.0"])
def test_unsupported_versions_are_refused(version):
    with pytest.raises(ValueError, match=r"3\.0 to 3\.7"):
        rules_for(version)
