"""The `grouping` asset group: which report each signal of a batch joins (logic in signals_assets/grouping/)."""

import functools

import dagster as dg
from pydantic import Field

from signals_assets.assets.ingestion import (
    BATCH_BACKFILL_POLICY,
    grouped_by_earlier_run,
    per_batch_lines,
    run_batches,
    run_metadata,
    signal_embeddings,
)
from signals_assets.grouping.batch import group_batch
from signals_assets.grouping.store import RegroupingConflict, prune_vector_snapshots, write_batch
from signals_assets.ingestion import inbox
from signals_assets.partition_keys import SIGNAL_BATCHES
from signals_assets.partitions import add_partition_metadata, signal_batches
from signals_assets.recovery.faults import pause_point
from signals_assets.reports import promotions as promotion_facts
from signals_assets.research import store as research_store
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.embedder import EmbedderResource
from signals_assets.resources.llm import LLMResource
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.settings import MAX_RETIRE_DAYS
from signals_assets.storage.clickhouse import lent_session
from signals_assets.timing import Phases

GROUPING_POOL = "signals_grouping"
PROMOTED_METADATA_KEY = "promoted_reports"
# Set on its own run when report_assignments refuses to group ahead of an earlier unfinished batch;
# the value is the run id, so Dagster's retries (which copy their parent's tags) do not inherit it.
REFUSED_TAG = "signals/refused_out_of_order"


class GroupingConfig(dg.Config):
    team_ids: list[int] = Field(
        default_factory=list, description="Re-group only these teams (empty: every team in the batch)."
    )
    # A window of no days (or fewer) groups against no earlier report; its start must stay a date.
    window_days: int = Field(
        default=30, ge=1, le=MAX_RETIRE_DAYS, description="Only signals assigned this recently are candidates."
    )
    regroup_through: str = Field(
        default="",
        description="The last batch a re-grouping split into several runs reaches (`signals regroup` over "
        "retired batches): the batches up to it are grouped again in the runs that follow.",
    )


@dg.asset(
    partitions_def=signal_batches,
    backfill_policy=BATCH_BACKFILL_POLICY,
    deps=[signal_embeddings],
    pool=GROUPING_POOL,
    group_name="grouping",
    kinds={"clickhouse", "python"},
    description="Which report each signal joins (append-only facts) and the report lifecycle events "
    "it causes; promoted reports are recorded under `promotions/` in the object store for "
    "report_promotion_sensor (and listed in the metadata). Refuses while an earlier batch is unfinished.",
)
def report_assignments(
    context: dg.AssetExecutionContext,
    config: GroupingConfig,
    clickhouse: ClickHouseResource,
    embedder: EmbedderResource,
    llm: LLMResource,
    object_store: ObjectStoreResource,
) -> dg.MaterializeResult:
    store = object_store.open()
    phases = Phases()
    keys = run_batches(context)
    with phases("inbox"):
        earlier = inbox.earlier_unfinished_batches(store, keys[0])
    if earlier:
        _refuse_out_of_order(context, keys[0], earlier)
    provider = llm.grouping()
    counts = []
    batch_metadata = {}
    hold = not provider.calls_model and embedder.provider == "minilm"
    # Held, the session goes on to the checks and SQL models that follow in the run (no model calls).
    open_session = functools.partial(clickhouse.session, log=context.log.info, hand_on=hold)
    # Without a model to call, nothing waits while the store is held: one session for the whole range.
    with lent_session(open_session, hold=hold) as opener:
        session = phases.sessions(opener)
        # Batches in key order: a later batch must see the reports of the earlier ones.
        for batch in keys:
            # Re-grouping some teams (`signals regroup`) is never an attempt at the whole batch.
            if not config.team_ids and (skipped := grouped_by_earlier_run(context, store, batch)):
                batch_metadata[batch] = {"skipped": skipped}
                counts.append(skipped)
                continue
            # "grouping" is what group_batch spends outside its store sessions (probe embeddings, decisions).
            with phases("grouping"):
                assignments, events, promotions = group_batch(
                    session, batch, config.team_ids, config.window_days, provider, embedder
                )
            with session() as db:
                try:
                    write_batch(db, batch, config.team_ids, assignments, events, max(keys[-1], config.regroup_through))
                except RegroupingConflict as conflict:
                    raise dg.Failure(str(conflict)) from None
                to_research = research_store.without_outcome(db, promotions)
            pause_point("promote")  # assignments written, promotions not yet recorded
            with phases("inbox"):
                promotion_facts.record_promotions(store, batch, to_research)
                if not config.team_ids:  # re-grouping some teams does not finish the batch for the others
                    inbox.mark_stage_done(store, batch, inbox.GROUPED, context.run_id)
            batch_metadata[batch] = {
                "signals_assigned": len(assignments),
                "reports_created": sum(1 for e in events if e["event"] == "created"),
                PROMOTED_METADATA_KEY: dg.MetadataValue.json(promotions),
            }
            counts.append(f"{batch}: {len(assignments)} signals assigned, {len(promotions)} reports promoted")
        # The earliest batch that may still be grouped is the earliest partition: a backfill targets an
        # existing one, retirement keeps unfinished and parked batches' partitions, and new batches
        # come later. (`signals regroup` re-adds retired ones: see prune_vector_snapshots.)
        with session() as db:
            prune_vector_snapshots(db, min([keys[0], *context.instance.get_dynamic_partitions(SIGNAL_BATCHES)]))
    # Each batch's own result on its own partition (a run may cover a range of batches).
    add_partition_metadata(context, batch_metadata)
    context.log.info(per_batch_lines(counts))
    return dg.MaterializeResult(
        metadata={**run_metadata(keys), "provider": provider.name, "seconds": dg.MetadataValue.json(phases.rounded())}
    )


def _refuse_out_of_order(context: dg.AssetExecutionContext, batch: str, earlier: list[str]) -> None:
    context.instance.add_run_tags(context.run_id, {REFUSED_TAG: context.run_id})
    raise dg.Failure(
        f"batch {batch} waits for {len(earlier)} earlier unfinished batch(es) ({', '.join(earlier[:3])}"
        f"{'…' if len(earlier) > 3 else ''}): batches are grouped in key order; it is requested again once "
        "they are grouped or parked",
        allow_retries=False,
    )
