"""liq-pipeline: Aave V3 liquidation prediction platform."""

__version__ = "0.1.0"
