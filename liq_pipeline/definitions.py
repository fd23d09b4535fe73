"""`defs`: everything Dagster loads. Thin: every asset, check and sensor calls library code.

One folder per domain under liq_pipeline/defs/ (predictive, lake, execution, backtest, alerts, maintenance), merged
here.
"""

from __future__ import annotations

import dagster as dg

from .defs.alerts.sensors import check_warning_alerts, run_failure_alerts
from .defs.backtest.assets import BACKTEST_ASSETS, backtest_ranges_job
from .defs.backtest.schedules import backtest_finished_ranges
from .defs.execution.assets import execution_records_job, liquidation_executions
from .defs.execution.schedules import record_finished_executions
from .defs.lake.assets import ALL_LAKE_ASSETS, lake_ranges_job
from .defs.lake.schedules import backfill_finished_ranges
from .defs.maintenance.schedules import prune_runs_job, prune_runs_schedule
from .defs.predictive.assets import liquidation_candidates, predictive_evaluation_job
from .defs.predictive.sensors import new_block_sensor
from .defs.resources import RESOURCES
from .risk.blas import use_one_blas_thread

# Dagster loads this module in every run process: the engine runs there (risk/blas.py says why one thread).
use_one_blas_thread()

defs = dg.Definitions(
    assets=[*ALL_LAKE_ASSETS, liquidation_candidates, liquidation_executions, *BACKTEST_ASSETS],
    jobs=[predictive_evaluation_job, lake_ranges_job, prune_runs_job, execution_records_job, backtest_ranges_job],
    sensors=[new_block_sensor, run_failure_alerts, check_warning_alerts],
    schedules=[backfill_finished_ranges, prune_runs_schedule, record_finished_executions, backtest_finished_ranges],
    resources=RESOURCES,
    executor=dg.in_process_executor,  # measured: multiprocess adds ~3 s per run on 2 cores
)
