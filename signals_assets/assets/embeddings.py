import dagster as dg

from signals_assets import inbox
from signals_assets.assets.ingest import BATCH_BACKFILL_POLICY, buffered_signals
from signals_assets.faults import pause_point
from signals_assets.partitions import batch_time, signal_batches
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.embedder import EmbedderResource
from signals_assets.resources.object_store import ObjectStoreResource


@dg.asset(
    partitions_def=signal_batches,
    backfill_policy=BATCH_BACKFILL_POLICY,
    deps=[buffered_signals],
    group_name="ingestion",
    kinds={"clickhouse", "python"},
    description="One embedding per accepted signal, tagged with the model name and dimension.",
)
def signal_embeddings(
    context: dg.AssetExecutionContext, clickhouse: ClickHouseResource, embedder: EmbedderResource,
    object_store: ObjectStoreResource,
) -> dg.MaterializeResult:
    store = object_store.open()
    total = 0
    for batch in sorted(context.partition_keys):
        with clickhouse.session(log=context.log.info) as db:
            signals = db.query(
                "SELECT team_id, signal_id, description FROM signals WHERE batch_key = {batch} ORDER BY signal_id",
                {"batch": batch},
            )
        # The store is released while the model runs: other processes may use it meanwhile.
        vectors = embedder.embed([s["description"] for s in signals])
        rows = [
            {"team_id": s["team_id"], "signal_id": s["signal_id"], "batch_key": batch, "model": embedder.model_name,
             "dimension": len(vector), "embedding": vector, "embedded_at": batch_time(batch)}
            for s, vector in zip(signals, vectors)
        ]
        with clickhouse.session(log=context.log.info) as db:
            db.replace_partition("signal_embeddings", "batch_key = {batch}", rows, {"batch": batch})
        pause_point("embed")  # embedded, stage marker not yet written
        inbox.mark_stage_done(store, batch, inbox.EMBEDDED, context.run_id)
        total += len(rows)
        context.log.info(f"{batch}: embedded {len(rows)} signals with {embedder.model_name}")
    return dg.MaterializeResult(metadata={"embedded": total, "model": embedder.model_name})
