"""Alerts from asset checks. OSS Dagster has no sensor on check results, so two run sensors cover them (both
measured to alert within one tick): a failed run (a blocking ERROR check fails its run), and a successful run
whose check evaluations include a failure (WARN or non-blocking)."""

# No `from __future__ import annotations` here: Dagster reads these signatures' annotations at load time.

import dagster as dg

from ...metrics.alerting import AlertEvent, raise_alert
from ..market import of_this_market
from ..resources import ChainResource, RedisResource


def _cache(chain: ChainResource, redis: RedisResource):
    """The market's cache for the alerts stream, or None when the chain or Redis cannot be reached."""
    try:
        with chain.client() as rpc:
            market, _rules = chain.market(rpc, rpc.quantity("eth_blockNumber"))
        return redis.market_cache(market.chain_id, market.pool)
    except Exception:  # alerts still go to the log and the webhook
        return None


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    records = instance.get_records_for_run(run_id=run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    failed = []
    for record in records.records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if not evaluation.passed:
            failed.append(
                {
                    "check": evaluation.check_name,
                    "asset": evaluation.asset_key.to_user_string(),
                    "severity": evaluation.severity.value,
                    "metadata": {k: str(v.value) for k, v in evaluation.metadata.items()},
                }
            )
    return failed


@dg.run_failure_sensor(
    name="run_failure_alerts",
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A failed run (including one stopped by a blocking ERROR check) becomes an alert.",
)
def run_failure_alerts(context: dg.RunFailureSensorContext, chain: ChainResource, redis: RedisResource) -> None:
    run = context.dagster_run
    if not of_this_market(run):  # another market's location alerts for it
        return
    checks = failed_checks(context.instance, run.run_id)
    message = f"run {run.run_id[:8]} of {run.job_name} failed"
    if checks:
        message += ": " + ", ".join(f"{c['asset']}.{c['check']} ({c['severity']})" for c in checks)
    details = {"run_id": run.run_id, "job": run.job_name, "checks": checks, "error": context.failure_event.message}
    raise_alert(chain.settings(), AlertEvent("run_failed", message, "ERROR", details), _cache(chain, redis))


@dg.run_status_sensor(
    name="check_warning_alerts",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A successful run whose asset checks failed (WARN, non-blocking) becomes an alert.",
)
def check_warning_alerts(context: dg.RunStatusSensorContext, chain: ChainResource, redis: RedisResource) -> None:
    run = context.dagster_run
    if not of_this_market(run):
        return
    checks = failed_checks(context.instance, run.run_id)
    if not checks:
        return
    message = f"run {run.run_id[:8]}: " + ", ".join(f"{c['asset']}.{c['check']} ({c['severity']})" for c in checks)
    severity = "ERROR" if any(c["severity"] == "ERROR" for c in checks) else "WARN"
    details = {"run_id": run.run_id, "job": run.job_name, "checks": checks}
    raise_alert(chain.settings(), AlertEvent("check_failed", message, severity, details), _cache(chain, redis))
