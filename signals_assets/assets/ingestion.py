"""The `ingestion` asset group: each claimed batch screened into the store, then embedded."""

import functools

import dagster as dg
from dagster._core.storage.tags import RUN_KEY_TAG

from signals_assets.ingestion import inbox, store as ingestion_store
from signals_assets.ingestion.screening import record_signal_ids, screen_batch
from signals_assets.ingestion.teams import load_team
from signals_assets.partition_keys import batch_time
from signals_assets.partitions import add_partition_metadata, signal_batches
from signals_assets.recovery.faults import pause_point
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.embedder import EmbedderResource
from signals_assets.resources.limits import SignalLimitsResource
from signals_assets.resources.llm import LLMResource
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.storage.clickhouse import lent_session
from signals_assets.timing import Phases

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
    context: dg.AssetExecutionContext,
    object_store: ObjectStoreResource,
    clickhouse: ClickHouseResource,
    llm: LLMResource,
    signal_limits: SignalLimitsResource,
    embedder: EmbedderResource,
) -> dg.MaterializeResult:
    # signal_embeddings runs next in this process (in_process executor): the model loads while we screen
    # (a daemon run's worker is a new process; measured 0.2-0.3 s less per 3-signal batch run).
    embedder.preload()
    store = object_store.open()
    limits = signal_limits.limits()
    teams = functools.cache(lambda team_id: load_team(store, team_id))
    judge = llm.safety_judge()
    phases = Phases()
    keys = run_batches(context)
    counts = []
    batch_metadata = {}
    hold = not judge.calls_model
    # Held, the session goes on to the next step (the embeddings' read comes before their model pass).
    open_session = functools.partial(clickhouse.session, log=context.log.info, hand_on=hold)
    # The offline rules call no model, so nothing waits while the store is held: one session for the range.
    with lent_session(open_session, hold=hold) as opener:
        session = phases.sessions(opener)
        for batch in keys:
            if skipped := grouped_by_earlier_run(context, store, batch):
                batch_metadata[batch] = {"skipped": skipped}
                counts.append(skipped)
                continue
            with phases("inbox"):
                objects = inbox.load_batch(store, batch, limits.max_signal_bytes)
            with session() as db:
                stored = ingestion_store.stored_in_other_batches(db, record_signal_ids(objects, limits), batch)
            # Screened outside a session: with a model to call, the store is released meanwhile.
            with phases("screening"):
                screened = screen_batch(batch, batch_time(batch), objects, teams, stored, judge.check_signal, limits)
            with session() as db:
                screened = ingestion_store.write_screened(db, batch, screened)
            with phases("inbox"):
                inbox.consolidate_batch(store, batch, objects, context.run_id)
            pause_point("buffer")  # buffered, claims removed, not embedded
            # Ids, never texts: batch runs are every team's, and stay when a team's data is cleaned up;
            # the quote is in `rejected_signals` (`signals status`), which the cleanup removes.
            unsafe = [
                {
                    "signal_id": r["signal_id"],
                    "source": f"{r['source_product']}/{r['source_type']} {r['source_id']}",
                    "kind": r["detail"],
                }
                for r in screened.rejected
                if r["reason"] == "unsafe"
            ]
            batch_metadata[batch] = {
                "accepted": len(screened.accepted),
                "rejected": len(screened.rejected),
                "rejected_by_reason": dg.MetadataValue.json(screened.rejection_counts()),
                "unsafe_by_kind": dg.MetadataValue.json(screened.unsafe_by_kind()),
                "unsafe_signals": dg.MetadataValue.json(unsafe[:UNSAFE_SHOWN]),
                "raw_batch_file": inbox.raw_batch_key(batch),
            }
            counts.append(
                f"{batch}: {len(objects)} objects, {len(screened.accepted)} accepted, {len(screened.rejected)} rejected"
            )
    # Each batch's own result on its own partition (a run may cover a range of batches).
    add_partition_metadata(context, batch_metadata)
    context.log.info(per_batch_lines(counts))
    return dg.MaterializeResult(
        metadata={**run_metadata(keys), "safety_filter": judge.name, "seconds": dg.MetadataValue.json(phases.rounded())}
    )


def run_batches(context: dg.AssetExecutionContext) -> list[str]:
    """The run's batches in key order. Dagster resolves a range by the set's order, in which a batch
    retired and added back comes last: a range from it to a later batch holds none."""
    keys = sorted(context.partition_keys)
    if not keys:
        first, last = context.partition_key_range
        raise dg.Failure(
            f"the run's partition range {first}...{last} holds no signal_batches partition: the set holds "
            f"{first} after {last} (a retired batch added back comes last); run each batch on its own"
        )
    return keys


def grouped_by_earlier_run(context: dg.AssetExecutionContext, store, batch: str) -> str | None:
    """Why this run leaves `batch` as it is, or None when it does the batch. An attempt (a sensor's or
    `signals process`'s run: it has a run key) of a batch that another run, or this run's earlier
    attempt, grouped already has nothing left to do: grouped again, it would read the reports as their
    research left them since and promote them anew. A manual run (a backfill: no run key) redoes it."""
    if RUN_KEY_TAG not in context.run.tags:
        return None
    grouped_by = inbox.stage_done_by(store, batch, inbox.GROUPED)
    if grouped_by is None:
        return None
    return f"{batch} was grouped by run {grouped_by or '(unnamed)'}: an attempt leaves it grouped"


def per_batch_lines(lines: list[str]) -> str:
    """One log message for the whole range: each message is a commit to the run's event log."""
    return "\n".join(lines)


def run_metadata(batches_in_run: list[str]) -> dict:
    """Shared by every batch of the run: the range it was part of."""
    return {"batches_in_run": len(batches_in_run), "run_range": f"{batches_in_run[0]}...{batches_in_run[-1]}"}


@dg.asset(
    partitions_def=signal_batches,
    backfill_policy=BATCH_BACKFILL_POLICY,
    deps=[buffered_signals],
    group_name="ingestion",
    kinds={"clickhouse", "python"},
    description="One embedding per accepted signal, tagged with the model name and dimension; a signal whose "
    "text the embedding server refuses alone while it embeds others (a content filter) is moved to "
    "`rejected_signals` as `embedding_refused`, with the server's answer.",
)
def signal_embeddings(
    context: dg.AssetExecutionContext,
    clickhouse: ClickHouseResource,
    embedder: EmbedderResource,
    object_store: ObjectStoreResource,
) -> dg.MaterializeResult:
    store = object_store.open()
    phases = Phases()
    session = phases.sessions(functools.partial(clickhouse.session, log=context.log.info))
    # The write's session goes on to the run's next steps (the embeddings' check, the grouping): no model in between.
    handed_on = phases.sessions(functools.partial(clickhouse.session, log=context.log.info, hand_on=True))
    keys = run_batches(context)
    skipped = {batch: why for batch in keys if (why := grouped_by_earlier_run(context, store, batch))}
    batch_metadata: dict[str, dict] = {batch: {"skipped": why} for batch, why in skipped.items()}
    counts = list(skipped.values())
    if to_embed := [batch for batch in keys if batch not in skipped]:
        # The whole range in one read, one model pass and one write: the model batches texts of similar
        # length across all of it, and the store is opened twice per run, not twice per batch.
        with session() as db:
            signals = ingestion_store.range_signals(db, to_embed)
        # The store is released while the model runs: other processes may use it meanwhile.
        with phases("embedding"):
            result = embedder.embed_isolating_refused([s["description"] for s in signals])
        with handed_on() as db:
            refused = ingestion_store.reject_refused(db, signals, result.refused)
            embedded = ingestion_store.write_embeddings(
                db, to_embed, embedder.model_name, result.kept(signals), result.vectors
            )
        for batch in to_embed:
            pause_point("embed")  # embedded, this batch's stage marker not yet written
            with phases("inbox"):
                inbox.mark_stage_done(store, batch, inbox.EMBEDDED, context.run_id)
            batch_metadata[batch] = {"embedded": embedded[batch], "refused": refused[batch]}
            counts.append(
                f"{batch}: embedded {embedded[batch]} signals with {embedder.model_name}, "
                f"{refused[batch]} refused by it (rejected as {ingestion_store.EMBEDDING_REFUSED})"
            )
    add_partition_metadata(context, batch_metadata)
    context.log.info(per_batch_lines(counts))
    return dg.MaterializeResult(
        metadata={
            **run_metadata(keys),
            "model": embedder.model_name,
            "seconds": dg.MetadataValue.json(phases.rounded()),
        }
    )
