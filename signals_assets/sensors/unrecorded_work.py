"""Work a failed run finished in the store but never recorded in Dagster: a kill between a batch's
grouping (or a report round's research outcome) and the end of the run's step, or a later batch of a
range failing, leaves the batch or report failed in the UI while its data is done. Dagster's run retry
records it while the run has retries left; after that this sensor requests a run that records it. The
decisions are `signal_inbox.unrecorded_batch_work` and `report_promotion.unrecorded_report_requests`,
which `signals process` executes too."""

import dagster as dg

from signals_assets.jobs import report_job, signal_batch_job
from signals_assets.partition_keys import SIGNAL_BATCHES
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.sensors.report_promotion import unrecorded_report_requests
from signals_assets.sensors.run_attempts import MAX_RECORDING_RUNS
from signals_assets.sensors.signal_inbox import unrecorded_batch_work


def build_unrecorded_work_sensor(max_batches_per_run: int = 20) -> dg.SensorDefinition:
    @dg.sensor(
        name="unrecorded_work_sensor",
        jobs=[signal_batch_job, report_job],
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests a run that records in Dagster each batch grouped, or report researched, by a "
        "failed run that Dagster no longer retries, with no materialisation: its steps skip it as done and "
        "materialise it (run key `…-recorded`; after a failed one `…-recorded2`, up to "
        f"{MAX_RECORDING_RUNS}), so the UI shows what the store holds.",
    )
    def unrecorded_work_sensor(
        context: dg.SensorEvaluationContext, object_store: ObjectStoreResource, clickhouse: ClickHouseResource
    ):
        instance = context.instance
        store = object_store.open()
        batches = unrecorded_batch_work(instance, store)
        requests = []
        if batches.to_run:
            order = instance.get_dynamic_partitions(SIGNAL_BATCHES)
            requests += [
                request.with_replaced_attrs(job_name=signal_batch_job.name)
                for request in batches.run_requests(order, max_batches_per_run)
            ]
        requests += [
            request.with_replaced_attrs(job_name=report_job.name)
            for request in unrecorded_report_requests(instance, store, clickhouse.session)
        ]
        if not requests:
            return dg.SkipReason(
                "every batch and report that the newest failed runs (those Dagster no longer retries) "
                f"finished has its materialisation or a run of it queued or running, or had {MAX_RECORDING_RUNS} "
                "failed runs recording it"
            )
        context.log.info(f"recording {[request.run_key for request in requests]}")
        return requests

    return unrecorded_work_sensor
