import functools

import dagster as dg

from signals_assets import inbox
from signals_assets.ingestion import record_signal_ids, screen_batch
from signals_assets.partitions import batch_time, signal_batches
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.teams import load_team

BATCH_BACKFILL_POLICY = dg.BackfillPolicy.single_run()


@dg.asset(
    partitions_def=signal_batches,
    backfill_policy=BATCH_BACKFILL_POLICY,
    group_name="ingestion",
    kinds={"s3", "clickhouse"},
    description="Accepted signals of each claimed batch (de-duplicated, gated, safety-filtered); "
    "rejected ones are kept in `rejected_signals` with their reason.",
)
def buffered_signals(
    context: dg.AssetExecutionContext, object_store: ObjectStoreResource, clickhouse: ClickHouseResource
) -> dg.MaterializeResult:
    store = object_store.open()
    teams = functools.cache(lambda team_id: load_team(store, team_id))
    accepted = rejected = 0
    reasons: dict[str, int] = {}
    for batch in sorted(context.partition_keys):
        objects = inbox.load_batch(store, batch)
        with clickhouse.session(log=context.log.info) as db:
            stored = {
                row["signal_id"]
                for row in db.query(
                    "SELECT signal_id FROM signals WHERE signal_id IN {ids} AND batch_key != {batch}",
                    {"ids": record_signal_ids(objects), "batch": batch},
                )
            }
            screened = screen_batch(
                batch, batch_time(batch), objects,
                teams, stored,
            )
            db.replace_partition("signals", "batch_key = {batch}", screened.accepted, {"batch": batch})
            db.replace_partition("rejected_signals", "batch_key = {batch}", screened.rejected, {"batch": batch})
        inbox.consolidate_batch(store, batch, objects)
        accepted += len(screened.accepted)
        rejected += len(screened.rejected)
        for reason, count in screened.rejection_counts().items():
            reasons[reason] = reasons.get(reason, 0) + count
        context.log.info(f"{batch}: {len(objects)} objects, {len(screened.accepted)} accepted, {len(screened.rejected)} rejected")
    return dg.MaterializeResult(
        metadata={
            "accepted": accepted,
            "rejected": rejected,
            "rejected_by_reason": dg.MetadataValue.json(reasons),
            "raw_batch_files": dg.MetadataValue.json([inbox.raw_batch_key(b) for b in sorted(context.partition_keys)]),
        }
    )
