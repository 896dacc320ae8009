"""Partition sets at scale: sensor ticks and the UI's asset partitions query with many report partitions.

    .venv/bin/python benchmarks/partition_scale.py [--reports 20000,50000] [--batches 2000]

For each size, a fresh sqlite instance and object store (temp dir) get that many `reports`
partitions, each with one `report_summaries` materialisation (90 % dated 40 days ago, 10 % today),
and `--batches` finished `signal_batches` partitions from 40 days ago. The materialisations are
written in one transaction with Dagster's own row format (`_event_to_row`): one
`report_runless_asset_event` per row costs ~80 ms on a loaded 2-core machine, hours for 50k.
Then it prints, in seconds:
- `instance.get_dynamic_partitions` and `get_materialized_partitions` for `reports`;
- the query the UI's asset partitions page makes (`PartitionHealthQuery`: partition keys and
  partition statuses of `report_summaries`) through Dagster's GraphQL schema against the code
  location loaded from `signals_assets/definitions.py`, first call and repeated;
- a step over 50 `reports` partitions (a report run's range at the default `SIGNALS_REPORTS_PER_RUN`)
  attaching each its own metadata, with `add_partition_metadata` (the set read once) and with one
  `add_asset_metadata` per key (Dagster reads the set for each);
- one tick of `report_promotion_sensor` (20 pending promotions), two of `signal_inbox_sensor` (the
  first moves the finished-through mark over the finished batches, the second lists after it) and one
  of `partition_retirement_sensor` (evaluated in-process, as the daemon's sensor thread does);
- the daemon's handling of the retirement tick's delete requests (one `has_dynamic_partition` and
  one `delete_dynamic_partition` per key, as `dagster/_daemon/sensor.py` does).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PARTITION_HEALTH_QUERY = """
query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on DefaultPartitionStatuses {
          materializedPartitions materializingPartitions failedPartitions unmaterializedPartitions
        }
      }
    }
  }
}
"""


def timed(label: str, function):
    started = time.perf_counter()
    result = function()
    print(f"  {label:<58} {time.perf_counter() - started:8.3f} s", flush=True)
    return result


def write_materializations(instance, asset: str, keys: list[str], timestamps: list[float]) -> None:
    import dagster as dg
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry
    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable

    storage = instance.event_log_storage
    rows = []
    for key, at in zip(keys, timestamps):
        event = DagsterEvent(
            event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
            job_name="__runless",
            event_specific_data=StepMaterializationData(dg.AssetMaterialization(asset_key=asset, partition=key)),
        )
        entry = EventLogEntry(
            error_info=None, level="debug", user_message="", run_id="", timestamp=at, dagster_event=event
        )
        rows.append(storage._event_to_row(entry))
    with storage.index_transaction() as conn:
        conn.execute(SqlEventLogStorageTable.insert(), rows)
    # one real event, so the asset's own row (last materialisation) exists as after real runs
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=keys[-1]))


def build(instance, store, n_reports: int, n_batches: int) -> list[str]:
    from signals_assets.ingestion import inbox
    from signals_assets.partition_keys import batch_key
    from signals_assets.partitions import reports, signal_batches
    from signals_assets.reports import promotions

    now = time.time()
    old = now - 40 * 86400
    report_keys = [f"r{1 + i % 50}-{i:016x}" for i in range(n_reports)]
    for start in range(0, n_reports, 5000):  # sqlite's variable limit per statement
        instance.add_dynamic_partitions(reports.name, report_keys[start : start + 5000])
    recent_from = int(n_reports * 0.9)
    write_materializations(
        instance,
        "report_summaries",
        report_keys,
        [old + i * 0.001 if i < recent_from else now - 60 for i in range(n_reports)],
    )
    batch_start = datetime.fromtimestamp(old, timezone.utc)
    batch_keys = [batch_key(batch_start + timedelta(minutes=i)) for i in range(n_batches)]
    instance.add_dynamic_partitions(signal_batches.name, batch_keys)
    for key in batch_keys:
        for stage in inbox.STAGES:
            inbox.mark_stage_done(store, key, stage)
    pending = [
        {"report_id": f"r{900 + i}-{i:016x}", "team_id": 900 + i, "round": 1} for i in range(20)
    ]  # promoted, not yet partitions
    promotions.record_promotions(store, batch_keys[-1], pending)
    return report_keys


def metadata_per_key(context, by_key: dict) -> None:
    for key, metadata in by_key.items():
        context.add_asset_metadata(metadata, partition_key=key)


def metadata_step(label: str, attach):
    """An asset of the `reports` partitions whose step attaches each partition its own metadata with
    `attach` and prints how long that took."""
    import dagster as dg

    from signals_assets.partitions import reports

    @dg.asset(name="per_report", partitions_def=reports, backfill_policy=dg.BackfillPolicy.single_run())
    def per_report(context) -> None:  # no annotation: this module's annotations are strings
        by_key = {key: {"title": f"report {key}"} for key in context.partition_keys}
        started = time.perf_counter()
        attach(context, by_key)
        print(f"  step over {len(by_key)} reports: {label:<42} {time.perf_counter() - started:8.3f} s", flush=True)

    return per_report


def measure(n_reports: int, n_batches: int) -> None:
    import dagster as dg
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    from signals_assets.housekeeping.retirement import RetentionPolicy
    from signals_assets.jobs import RANGE_END_TAG, RANGE_START_TAG
    from signals_assets.partitions import add_partition_metadata, reports
    from signals_assets.resources.object_store import ObjectStoreResource
    from signals_assets.sensors.partition_retirement import build_partition_retirement_sensor
    from signals_assets.sensors.report_promotion import build_report_promotion_sensor
    from signals_assets.sensors.signal_inbox import build_signal_inbox_sensor
    from signals_assets.storage.object_store import LocalObjectStore

    print(f"{n_reports} report partitions, {n_batches} batch partitions", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SIGNALS_HOME"] = str(Path(tmp) / "home")
        store = LocalObjectStore(Path(tmp) / "home" / "objects")
        (Path(tmp) / "dagster_home").mkdir()
        with dg.DagsterInstance.local_temp(str(Path(tmp) / "dagster_home")) as instance:
            timed("setup (bulk insert)", lambda: build(instance, store, n_reports, n_batches))
            keys = timed("instance.get_dynamic_partitions(reports)", lambda: instance.get_dynamic_partitions("reports"))
            assert len(keys) == n_reports
            timed(
                "instance.get_materialized_partitions(report_summaries)",
                lambda: instance.get_materialized_partitions(dg.AssetKey("report_summaries")),
            )
            with define_out_of_process_context(str(REPO / "signals_assets" / "definitions.py"), "defs", instance) as ui:
                variables = {"assetKey": {"path": ["report_summaries"]}}
                for label in ("UI asset partitions query (first)", "UI asset partitions query (again)"):
                    result = timed(label, lambda: execute_dagster_graphql(ui, PARTITION_HEALTH_QUERY, variables))
                    node = result.data["assetNodeOrError"]
                    assert len(node["partitionKeysByDimension"][0]["partitionKeys"]) == n_reports, result
                    assert len(node["assetPartitionStatuses"]["materializedPartitions"]) == n_reports

            run_range = {RANGE_START_TAG: keys[-50], RANGE_END_TAG: keys[-1]}
            for label, attach in (
                ("add_partition_metadata", add_partition_metadata),
                ("add_asset_metadata per key", metadata_per_key),
            ):
                assert dg.materialize([metadata_step(label, attach)], instance=instance, tags=run_range).success

            resources = {"object_store": ObjectStoreResource(root=str(store.root))}

            def tick(sensor):
                return sensor(dg.build_sensor_context(instance=instance, resources=resources))

            promotion = timed(
                "report_promotion_sensor tick (20 promotions)", lambda: tick(build_report_promotion_sensor())
            )
            assert len(promotion.run_requests) == 20
            for label in ("first: moves the finished-through mark", "again: lists after the mark"):
                timed(f"signal_inbox_sensor tick (inbox empty, {label})", lambda: tick(build_signal_inbox_sensor(500)))
            policy = RetentionPolicy(batches_after_days=7, reports_after_days=30, max_retained=20000)
            retirement = timed(
                "partition_retirement_sensor tick", lambda: tick(build_partition_retirement_sensor(policy))
            )
            requests = retirement.dynamic_partitions_requests

            def apply():
                for request in requests:
                    for key in request.partition_keys:
                        if instance.has_dynamic_partition(request.partitions_def_name, key):
                            instance.delete_dynamic_partition(request.partitions_def_name, key)

            timed(f"daemon applies the deletes ({sum(len(r.partition_keys) for r in requests)} keys)", apply)
            print(
                "  "
                + json.dumps(
                    {
                        "retired": {r.partitions_def_name: len(r.partition_keys) for r in requests},
                        "reports_left": len(instance.get_dynamic_partitions(reports.name)),
                    }
                ),
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", default="20000,50000", help="comma-separated partition counts")
    parser.add_argument("--batches", type=int, default=2000)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    for n in (int(x) for x in args.reports.split(",")):
        measure(n, args.batches)


if __name__ == "__main__":
    main()
