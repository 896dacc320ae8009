"""The guarantees as asset checks (queries in signals_assets/checks/guarantees.py): they run in the
same runs as their assets (the jobs select assets with their checks) and show on each asset's
Checks tab. Blocking checks stop the rest of their run when downstream work would be wrong."""

import functools
from typing import Callable

import dagster as dg

from signals_assets.assets.grouping import report_assignments
from signals_assets.assets.ingestion import buffered_signals, signal_embeddings
from signals_assets.assets.reports import report_research, report_summaries, run_is_live
from signals_assets.checks import guarantees
from signals_assets.checks.guarantees import BatchScope, Verdict
from signals_assets.ingestion import inbox
from signals_assets.jobs import RANGE_END_TAG, RANGE_START_TAG
from signals_assets.partition_keys import is_batch_key
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.embedder import EmbedderResource
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.storage.clickhouse import StoreSession

PARTITION_TAG = "dagster/partition"
REPORTS_MODEL = "reports"
PARKED_DESCRIPTION = (
    "Warns while a {what} is parked after too many failed attempts (it waits for `signals unpark`); "
    "the reasons are in the metadata."
)


def batch_scope(context: dg.AssetCheckExecutionContext) -> BatchScope:
    """The batches of the run (one partition or a range of them); every batch when the run has none
    (a check run on its own from the UI, or a report run)."""
    tags = context.run.tags
    first, last = (
        (tags[PARTITION_TAG],) * 2 if PARTITION_TAG in tags else (tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG))
    )
    if not (is_batch_key(first) and is_batch_key(last)):
        return BatchScope()
    return BatchScope(first, last)


def check_result(
    verdict: Verdict,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    spec: dg.AssetCheckSpec | None = None,
) -> dg.AssetCheckResult:
    """`spec`: which check of a multi-asset check the verdict is for."""
    return dg.AssetCheckResult(
        passed=verdict.passed,
        severity=severity,
        description=verdict.summary,
        metadata={**verdict.counts, "problems": dg.MetadataValue.json(verdict.problems)},
        **({"asset_key": spec.asset_key, "check_name": spec.name} if spec else {}),
    )


def store_check(
    context: dg.AssetCheckExecutionContext,
    clickhouse: ClickHouseResource,
    guarantee: Callable[[StoreSession], Verdict],
    hand_on: bool = True,
) -> dg.AssetCheckResult:
    """The verdict of a guarantee over the store, with the store held only for its queries; by default
    the session goes on to the run's next store use (the batch run's checks are followed by store work:
    the grouping, the SQL models, the next check)."""
    with clickhouse.session(log=context.log.info, hand_on=hand_on) as db:
        verdict = guarantee(db)
    return check_result(verdict)


@dg.asset_check(
    asset=signal_embeddings,
    blocking=True,
    description="Every accepted signal of the run's batches has exactly one embedding of the configured "
    "model, of the model's dimension (blocking: grouping would silently leave a signal out).",
)
def one_embedding_per_accepted_signal(
    context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource, embedder: EmbedderResource
) -> dg.AssetCheckResult:
    scope = batch_scope(context)
    return store_check(
        context,
        clickhouse,
        lambda db: guarantees.embeddings_complete(db, scope, embedder.model_name, embedder.dimension),
    )


@dg.asset_check(
    asset=report_assignments,
    blocking=True,
    description="Every assigned signal of the run's batches has exactly one current assignment, in a report "
    "of its own team, and every accepted signal of a grouped batch is assigned (blocking: in a run that "
    "also refreshes the SQL models or summarises reports, they do not run on wrong assignments).",
)
def one_current_assignment_per_signal(
    context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource
) -> dg.AssetCheckResult:
    scope = batch_scope(context)
    return store_check(context, clickhouse, lambda db: guarantees.assignments_consistent(db, scope))


NO_CLAIMS_LEFT_BEHIND = dg.AssetCheckSpec(
    "no_claims_left_behind",
    asset=buffered_signals,
    description="No object of a buffered (or finished) batch is left under `claimed/`: once its raw batch "
    "file and stage marker are written, its claims are removed.",
)
NO_PARKED_BATCHES = dg.AssetCheckSpec(
    "no_parked_batches",
    asset=buffered_signals,
    description=PARKED_DESCRIPTION.format(what="batch"),
)


# One step for both (each still runs on its own from the Checks tab): a run pays one step and one
# listing of the inbox's batches, not two.
@dg.multi_asset_check(specs=[NO_CLAIMS_LEFT_BEHIND, NO_PARKED_BATCHES], can_subset=True)
def batch_inbox_checks(context: dg.AssetCheckExecutionContext, object_store: ObjectStoreResource):
    store = object_store.open()
    scope = batch_scope(context)
    # Listed from the run's first batch, or from the finished-through mark where that comes first (every
    # parked batch lies after it): not the whole history for each run.
    listed = inbox.batch_progress(
        store, min(scope.first, inbox.after(inbox.finished_through(store))) if scope.first else ""
    )
    selected = context.selected_asset_check_keys
    if NO_CLAIMS_LEFT_BEHIND.key in selected:
        yield check_result(guarantees.claims_consolidated(listed, scope), spec=NO_CLAIMS_LEFT_BEHIND)
    if NO_PARKED_BATCHES.key in selected:
        yield check_result(guarantees.no_parked_batches(listed), dg.AssetCheckSeverity.WARN, NO_PARKED_BATCHES)


@dg.asset_check(
    asset=report_summaries,
    description=PARKED_DESCRIPTION.format(what="report round"),
)
def no_parked_report_rounds(object_store: ObjectStoreResource) -> dg.AssetCheckResult:
    return check_result(guarantees.no_parked_rounds(object_store.open()), dg.AssetCheckSeverity.WARN)


@dg.asset_check(
    asset=report_research,
    description="No report is `in_progress` unless the research run its row names is queued or running "
    "(research_reconciler fails the others).",
)
def no_report_stranded_in_progress(
    context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource
) -> dg.AssetCheckResult:
    live = functools.partial(run_is_live, context.instance)
    # Not handed on: in a report run nothing of the store follows.
    return store_check(
        context, clickhouse, lambda db: guarantees.reports_in_progress_have_live_runs(db, live), hand_on=False
    )


@dg.asset_check(
    asset=REPORTS_MODEL,
    description="The `reports` model's signal counts and weights equal a recomputation from the assignment "
    "rows, for the reports the run's batches touched.",
)
def report_counts_match_assignments(
    context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource
) -> dg.AssetCheckResult:
    scope = batch_scope(context)
    return store_check(context, clickhouse, lambda db: guarantees.report_counts_match(db, scope))


ASSET_CHECKS = [
    one_embedding_per_accepted_signal,
    one_current_assignment_per_signal,
    batch_inbox_checks,
    no_parked_report_rounds,
    no_report_stranded_in_progress,
    report_counts_match_assignments,
]
