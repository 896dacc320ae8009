"""Research rounds whose Dagster run ended without recording an outcome (its worker was killed,
the host restarted) would leave their report `in_progress` forever. The sensor reads only
Dagster's run storage; when a report run has failed or been cancelled it requests one run of
`research_reconciliation_job`, which marks such reports `failed` and removes left-over containers."""

import time
from datetime import datetime, timezone

import dagster as dg

from signals_assets.jobs import HOUSEKEEPING_TAGS, report_job
from signals_assets.reports import promotions
from signals_assets.research import store as research_store
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.resources.sandbox import SandboxResource
from signals_assets.storage.clickhouse import StoreSession

UNFINISHED = {
    status.value
    for status in (
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    )
}


def fail_abandoned_research(db: StoreSession, run_status) -> list[research_store.ResearchRound]:
    """Mark `failed` every in-progress research round whose run has finished; the rounds marked.

    `run_status(run_id)` is the Dagster run's status name, None when the instance does not know
    the run (the round is then left alone: it may belong to another Dagster instance).
    """
    failed = []
    for run in research_store.in_progress_rounds(db):
        status = run_status(run.run_id)
        if status is None or status in UNFINISHED:
            continue
        reason = (
            f"research run {run.run_id} ended ({status}) before recording an outcome; "
            "marked failed by the research reconciler"
        )
        research_store.record_failed(db, run, reason, seq=research_store.RECONCILED_SEQ)
        failed.append(run)
    return failed


@dg.op(
    description="Marks research rounds whose run ended without an outcome as failed; removes "
    "research containers of ended runs."
)
def reconcile_research(
    context: dg.OpExecutionContext,
    clickhouse: ClickHouseResource,
    sandbox: SandboxResource,
    object_store: ObjectStoreResource,
) -> None:
    def run_status(run_id: str) -> str | None:
        run = context.instance.get_run_by_id(run_id) if run_id else None
        return run.status.value if run else None

    with clickhouse.session(log=context.log.info) as db:
        failed = fail_abandoned_research(db, run_status)
    store = object_store.open()
    for run in failed:  # the round has its outcome now
        promotions.promotion_done(store, run.report, run.round)
    removed = sandbox.prune_containers(context.instance)
    context.log.info(
        f"marked {len(failed)} report(s) failed: {[run.report for run in failed]}; "
        f"removed {len(removed)} left-over research container(s)"
    )


@dg.job(description="Fail research rounds whose Dagster run died; clean up their containers.", tags=HOUSEKEEPING_TAGS)
def research_reconciliation_job():
    reconcile_research()


def cursor_time(cursor: str | None) -> float:
    """The update time of the last failed report run seen, from the cursor; 0 (look at every failed
    report run again: reconciling is idempotent) for a cursor that is no time up to now, such as one
    set by hand, which would otherwise fail every tick or hide the failures before it."""
    try:
        since = float(cursor or 0)
    except ValueError:
        return 0.0
    return since if 0 <= since <= time.time() else 0.0


@dg.sensor(
    name="research_reconciler",
    job=research_reconciliation_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When a report run has failed or been cancelled, requests a reconciliation run that "
    "marks reports left in_progress by dead research runs as failed.",
)
def research_reconciler(context: dg.SensorEvaluationContext):
    since = cursor_time(context.cursor)
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(
            job_name=report_job.name,
            statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED],
            updated_after=datetime.fromtimestamp(since, tz=timezone.utc),
        ),
        limit=100,
    )
    records = [r for r in records if r.update_timestamp.timestamp() > since]
    if not records:
        return dg.SkipReason("no report run failed or was cancelled since the last check")
    newest = max(records, key=lambda r: r.update_timestamp)
    context.update_cursor(str(newest.update_timestamp.timestamp()))
    return dg.RunRequest(run_key=f"after-{newest.dagster_run.run_id}")
