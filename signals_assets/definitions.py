"""The single entry point: builds the code location's Definitions when Dagster loads it."""

import dagster as dg

from signals_assets.assets.checks import ASSET_CHECKS
from signals_assets.assets.grouping import report_assignments
from signals_assets.assets.ingestion import buffered_signals, signal_embeddings
from signals_assets.assets.reports import report_research, report_summaries
from signals_assets.assets.sql_models import build_sql_model_assets
from signals_assets.housekeeping.retirement import RetentionPolicy
from signals_assets.jobs import regroup_job, report_job, signal_batch_job
from signals_assets.resources.environment import build_resources
from signals_assets.sensors.dead_runs import dead_run_reconciler
from signals_assets.sensors.partition_retirement import build_partition_retirement_sensor
from signals_assets.sensors.report_promotion import build_report_promotion_sensor
from signals_assets.sensors.research_reconciler import research_reconciler, research_reconciliation_job
from signals_assets.sensors.signal_inbox import build_signal_inbox_sensor
from signals_assets.sensors.unrecorded_work import build_unrecorded_work_sensor
from signals_assets.settings import load_settings


@dg.definitions
def defs() -> dg.Definitions:
    settings = load_settings()
    return dg.Definitions(
        # Code references: each asset's page in the UI links to the file that defines it.
        assets=dg.with_source_code_references(
            [
                buffered_signals,
                signal_embeddings,
                report_assignments,
                report_summaries,
                report_research,
                build_sql_model_assets(),
            ]
        ),
        asset_checks=ASSET_CHECKS,
        jobs=[signal_batch_job, report_job, regroup_job, research_reconciliation_job],
        sensors=[
            build_signal_inbox_sensor(
                settings.batch_max_signals,
                settings.sensor_interval_seconds,
                settings.max_attempts,
                settings.retry_backoff_seconds,
                settings.max_signals_per_team_batch,
                settings.max_open_batches,
                settings.max_batches_per_run,
            ),
            build_report_promotion_sensor(
                settings.max_attempts,
                settings.retry_backoff_seconds,
                settings.reports_per_run,
                settings.max_reports_per_team_day,
                settings.sensor_interval_seconds,
            ),
            dead_run_reconciler,
            research_reconciler,
            build_unrecorded_work_sensor(settings.max_batches_per_run),
            build_partition_retirement_sensor(
                RetentionPolicy(
                    settings.retire_batches_after_days,
                    settings.retire_reports_after_days,
                    settings.max_retained_partitions,
                )
            ),
        ],
        resources=build_resources(settings),
    )
