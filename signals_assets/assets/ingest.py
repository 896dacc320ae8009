import functools

import dagster as dg

from signals_assets import inbox
from signals_assets.faults import pause_point
from signals_assets.ingestion import record_signal_ids, screen_batch
from signals_assets.partitions import batch_time, signal_batches
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.llm import LLMResource
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.teams import load_team

BATCH_BACKFILL_POLICY = dg.BackfillPolicy.single_run()
UNSAFE_SHOWN = 20


@dg.asset(
    partitions_def=signal_batches,
    backfill_policy=BATCH_BACKFILL_POLICY,
    group_name="ingestion",
    kinds={"s3", "clickhouse"},
    description="Accepted signals of each claimed batch (de-duplicated, gated, safety-filtered); "
    "rejected ones are kept in `rejected_signals` with their reason, and unsafe ones with the kind of "
    "manipulation and the offending fragment.",
)
def buffered_signals(
    context: dg.AssetExecutionContext, object_store: ObjectStoreResource, clickhouse: ClickHouseResource,
    llm: LLMResource,
) -> dg.MaterializeResult:
    store = object_store.open()
    teams = functools.cache(lambda team_id: load_team(store, team_id))
    judge = llm.safety_judge()
    accepted = rejected = 0
    reasons: dict[str, int] = {}
    unsafe_kinds: dict[str, int] = {}
    unsafe: list[dict] = []
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
        # Screened with the store released: the safety filter may call a model.
        screened = screen_batch(batch, batch_time(batch), objects, teams, stored, judge.check_signal)
        with clickhouse.session(log=context.log.info) as db:
            db.replace_partition("signals", "batch_key = {batch}", screened.accepted, {"batch": batch})
            db.replace_partition("rejected_signals", "batch_key = {batch}", screened.rejected, {"batch": batch})
        inbox.consolidate_batch(store, batch, objects, context.run_id)
        pause_point("buffer")  # buffered, claims removed, not embedded
        accepted += len(screened.accepted)
        rejected += len(screened.rejected)
        for counts, into in ((screened.rejection_counts(), reasons), (screened.unsafe_by_kind(), unsafe_kinds)):
            for key, count in counts.items():
                into[key] = into.get(key, 0) + count
        unsafe += [{"signal_id": r["signal_id"], "source": f"{r['source_product']}/{r['source_type']} {r['source_id']}",
                    "kind": r["detail"], "quote": r["quote"]} for r in screened.rejected if r["reason"] == "unsafe"]
        context.log.info(f"{batch}: {len(objects)} objects, {len(screened.accepted)} accepted, {len(screened.rejected)} rejected")
    return dg.MaterializeResult(
        metadata={
            "accepted": accepted,
            "rejected": rejected,
            "rejected_by_reason": dg.MetadataValue.json(reasons),
            "unsafe_by_kind": dg.MetadataValue.json(unsafe_kinds),
            "unsafe_signals": dg.MetadataValue.json(unsafe[:UNSAFE_SHOWN]),
            "safety_filter": judge.name,
            "raw_batch_files": dg.MetadataValue.json([inbox.raw_batch_key(b) for b in sorted(context.partition_keys)]),
        }
    )
