"""What changes between Aave V3 protocol versions, as far as the engine's arithmetic is concerned.

The market's version is a setting (`AAVE_PROTOCOL_VERSION`): a node cannot be asked which rounding it runs.
See docs/predictive-hf.md for the source of each rule.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProtocolRules:
    version: str
    # V3.0-3.4: avgLT = floor(sum(coll x LT) / coll); HF = coll.percentMul(avgLT).wadDiv(debt).
    # V3.5+:    HF = sum(coll x LT).wadDiv(debt) / 1e4, collateral rounds down and debt rounds up.
    floors_average_threshold: bool
    # V3.0-3.1 e-mode categories may carry their own price source; removed in 3.2 (collateral bitmaps instead).
    emode_price_source: bool
    # V3.3+: a reserve position under $2,000 (debt or collateral) may be liquidated in full.
    small_position_full_close: bool
    # V3.4+ compounded interest: x = rate*dt/year; RAY + x + x.rayMul(x/2 + x.rayMul(x/6)).
    # V3.0-3.3 use the binomial form with basePowerTwo / basePowerThree (different digits).
    compounding_x_form: bool
    # Stable-rate debt counts in the HF up to V3.1; V3.2 removed stable borrowing.
    counts_stable_debt: bool

    @property
    def label(self) -> str:
        return f"V{self.version}"


def rules_for(version: str) -> ProtocolRules:
    major, minor = (int(part) for part in version.split(".")[:2])
    if major != 3 or not 0 <= minor <= 7:
        raise ValueError(f"unsupported Aave protocol version {version!r}: expected 3.0 to 3.7")
    return ProtocolRules(
        version=f"{major}.{minor}",
        floors_average_threshold=minor <= 4,
        emode_price_source=minor <= 1,
        small_position_full_close=minor >= 3,
        compounding_x_form=minor >= 4,
        counts_stable_debt=minor <= 1,
    )
