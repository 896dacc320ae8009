import dagster as dg

from signals_assets.assets.grouping import PROMOTED_METADATA_KEY
from signals_assets.jobs import TEAM_TAG, report_job
from signals_assets.partitions import reports

MATERIALIZATIONS_PER_TICK = 200


def promotions_from_metadata(metadata: dict) -> list[dict]:
    value = metadata.get(PROMOTED_METADATA_KEY)
    return list(value.data) if value is not None else []


def report_run_key(promotion: dict) -> str:
    return f"{promotion['report_id']}-round{promotion['round']}"


def report_run_requests(promotions: list[dict]) -> list[dg.RunRequest]:
    unique = {report_run_key(p): p for p in promotions}
    return [
        dg.RunRequest(run_key=key, partition_key=p["report_id"], tags={TEAM_TAG: str(p["team_id"])})
        for key, p in unique.items()
    ]


@dg.sensor(
    name="report_promotion_sensor",
    job=report_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reads promoted report ids from report_assignments materialisations (Dagster's event "
    "log, never the store), adds `reports` partitions and requests one run per research round.",
)
def report_promotion_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    result = context.instance.fetch_materializations(
        dg.AssetKey("report_assignments"), limit=MATERIALIZATIONS_PER_TICK, cursor=context.cursor, ascending=True
    )
    promotions = [
        p
        for record in result.records
        for p in promotions_from_metadata(record.event_log_entry.asset_materialization.metadata)
    ]
    if not promotions:
        return dg.SensorResult(
            skip_reason=f"{len(result.records)} new report_assignments materialisation(s), no report promoted",
            cursor=result.cursor if result.records else context.cursor,
        )
    requests = report_run_requests(promotions)
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[reports.build_add_request(sorted({r.partition_key for r in requests}))],
        cursor=result.cursor,
    )
