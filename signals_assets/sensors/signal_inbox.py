import json

import dagster as dg

from signals_assets import inbox
from signals_assets.jobs import signal_batch_job
from signals_assets.partitions import signal_batches
from signals_assets.resources.object_store import ObjectStoreResource

RUN_KEY_TAG = "dagster/run_key"


def batches_without_run(instance: dg.DagsterInstance, batches: list[str]) -> list[str]:
    """Unfinished batches that no run was ever created for (e.g. a tick died after claiming)."""
    return [
        b for b in batches
        if not instance.get_run_records(filters=dg.RunsFilter(tags={RUN_KEY_TAG: b}), limit=1)
    ]


def build_signal_inbox_sensor(max_signals_per_batch: int, interval_seconds: int = 15) -> dg.SensorDefinition:
    @dg.sensor(
        name="signal_inbox_sensor",
        job=signal_batch_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Claims pending inbox objects into batches and requests one run per batch "
        "(run key = batch key). Unfinished batches without a run are requested again.",
    )
    def signal_inbox_sensor(context: dg.SensorEvaluationContext, object_store: ObjectStoreResource):
        cursor = json.loads(context.cursor) if context.cursor else {}
        store = object_store.open()
        claim = inbox.claim_pending(store, max_signals_per_batch, cursor.get("last_batch"))
        unfinished = inbox.unfinished_batches(store)
        to_run = batches_without_run(context.instance, unfinished)
        new_cursor = json.dumps({
            "last_batch": claim.last_batch,
            "claimed_signals": cursor.get("claimed_signals", 0) + claim.claimed_signals,
        })
        if not to_run:
            in_flight = f"{len(unfinished)} unfinished batch(es), each with a run" if unfinished else "no unfinished batch"
            return dg.SensorResult(skip_reason=f"inbox empty in {store.describe()}; {in_flight}", cursor=new_cursor)
        context.log.info(f"claimed {claim.claimed_signals} signals into {claim.new_batches}; requesting {to_run}")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=b, partition_key=b) for b in to_run],
            dynamic_partitions_requests=[signal_batches.build_add_request(to_run)],
            cursor=new_cursor,
        )

    return signal_inbox_sensor
