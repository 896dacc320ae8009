"""Housekeeping: retire old, closed partitions so both dynamic partition sets stay bounded.

Reads only the instance (partition keys, materialisation history, queued and running runs,
backfills) and the object store (batch stage markers, promotions); the policy is in
`housekeeping/retirement.py`. The daemon applies the returned delete requests; no run is needed.
"""

import time
from dataclasses import dataclass, field
from typing import Sequence

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus

from signals_assets.assets.reports import report_research, report_summaries
from signals_assets.housekeeping.retirement import RetentionPolicy, retirable_batches, retirable_reports
from signals_assets.ingestion import inbox
from signals_assets.jobs import RANGE_END_TAG, RANGE_START_TAG
from signals_assets.partitions import reports, signal_batches
from signals_assets.reports import promotions, quotas
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.sensors.run_attempts import PARTITION_TAG
from signals_assets.storage.object_store import ObjectStore

ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
BACKFILL_IN_PROGRESS = (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING, BulkActionStatus.FAILING)
REPORT_ASSETS = (report_summaries.key, report_research.key)


@dataclass
class RetirementPlan:
    batches: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    held_back: str = ""  # why nothing was retired this time, if so

    def requests(self) -> list[dg.DeleteDynamicPartitionsRequest]:
        return [
            partitions.build_delete_request(keys)
            for partitions, keys in ((signal_batches, self.batches), (reports, self.reports))
            if keys
        ]


def busy_partitions(instance: dg.DagsterInstance, key_sets: Sequence[Sequence[str]]) -> set[str] | None:
    """Partitions that queued or running runs target; None when that cannot be told for sure (a
    backfill in progress, or a run over a subset or range this code cannot resolve)."""
    if any(instance.get_backfills(status=status, limit=1) for status in BACKFILL_IN_PROGRESS):
        return None
    busy: set[str] = set()
    for record in instance.get_run_records(dg.RunsFilter(statuses=ACTIVE_STATUSES)):
        run = record.dagster_run
        if PARTITION_TAG in run.tags:
            busy.add(run.tags[PARTITION_TAG])
        elif RANGE_START_TAG in run.tags or RANGE_END_TAG in run.tags:
            start, end = run.tags.get(RANGE_START_TAG, ""), run.tags.get(RANGE_END_TAG, "")
            keys = next((list(k) for k in key_sets if start in k and end in k), None)
            if keys is None:
                return None
            busy.update(keys[keys.index(start) : keys.index(end) + 1])
        elif run.partitions_subset is not None:
            return None
    return busy


def recently_materialized(instance: dg.DagsterInstance, since: float) -> set[str]:
    """Report partitions with a materialisation after `since` (a timestamp)."""
    first_ids = [
        records[0].storage_id
        for asset in REPORT_ASSETS
        if (
            records := instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset, after_timestamp=since), limit=1, ascending=True
            ).records
        )
    ]
    if not first_ids:
        return set()
    cursor = min(first_ids) - 1
    return set().union(*(instance.get_materialized_partitions(asset, after_cursor=cursor) for asset in REPORT_ASSETS))


def retirement_plan(
    instance: dg.DagsterInstance, store: ObjectStore, policy: RetentionPolicy, now: float
) -> RetirementPlan:
    batch_keys = signal_batches.get_partition_keys(dynamic_partitions_store=instance)
    report_keys = reports.get_partition_keys(dynamic_partitions_store=instance)
    busy = busy_partitions(instance, [batch_keys, report_keys])
    if busy is None:
        return RetirementPlan(held_back="a backfill is in progress or a run's partitions cannot be told")
    open_reports = {p["report_id"] for p in promotions.all_promotions(store)}

    def closed_batch(batch: str) -> bool:
        progress = inbox.progress_of(store, batch)
        return progress.finished and progress.parked is None

    ever = set().union(*(instance.get_materialized_partitions(asset) for asset in REPORT_ASSETS))
    recent = recently_materialized(instance, now - policy.reports_after_days * 86400)
    return RetirementPlan(
        batches=retirable_batches(batch_keys, now, policy, busy, closed_batch),
        reports=retirable_reports(report_keys, policy, busy | open_reports, ever, recent),
    )


def build_partition_retirement_sensor(policy: RetentionPolicy, interval_seconds: int = 300) -> dg.SensorDefinition:
    @dg.sensor(
        name="partition_retirement_sensor",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Keeps the partition sets bounded: retires `signal_batches` partitions of finished batches "
        f"older than {policy.batches_after_days} days and `reports` partitions of closed reports not "
        f"materialised for {policy.reports_after_days} days, keeping at most {policy.max_retained} closed ones "
        "per set. Their data stays in the store; nothing open is retired; a report with new work is re-added.",
    )
    def partition_retirement_sensor(context: dg.SensorEvaluationContext, object_store: ObjectStoreResource):
        store = object_store.open()
        now = time.time()
        plan = retirement_plan(context.instance, store, policy, now)
        forgotten = quotas.forget_ledgers_before(store, now)
        if not plan.requests():
            return dg.SkipReason(
                f"nothing to retire ({plan.held_back or 'every partition is open or recent'}); "
                f"{forgotten} old report-quota entries removed"
            )
        context.log.info(
            f"retiring {len(plan.batches)} batch partition(s) and {len(plan.reports)} report partition(s); "
            f"{forgotten} old report-quota entries removed"
        )
        return dg.SensorResult(dynamic_partitions_requests=plan.requests())

    return partition_retirement_sensor
