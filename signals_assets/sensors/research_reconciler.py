"""Research rounds whose Dagster run ended without recording an outcome (its worker was killed,
the host restarted) would leave their report `in_progress` forever. The sensor reads only
Dagster's run storage; when a report run has failed or been cancelled it requests one run of
`research_reconciliation_job`, which marks such reports `failed` and removes left-over containers."""

from datetime import datetime, timezone

import dagster as dg

from signals_assets import lifecycle, promotions
from signals_assets.assets.reports import _event, _record, _result_row
from signals_assets.clickhouse import StoreSession
from signals_assets.jobs import HOUSEKEEPING_TAGS, report_job
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.resources.sandbox import SandboxResource

# Reports whose latest event is in_progress, with the in-progress research row naming their run.
_IN_PROGRESS_RESEARCH = """
SELECT r.team_id AS team_id, r.report_id AS report_id, r.research_round AS research_round,
       r.dagster_run_id AS run_id, r.sandbox AS sandbox, e.signals_at_run AS signals_at_run
FROM research_results AS r
INNER JOIN (
    SELECT report_id, argMax(status, (at, seq)) AS status, argMax(signals_at_run, (at, seq)) AS signals_at_run
    FROM report_events GROUP BY report_id
) AS e ON e.report_id = r.report_id
WHERE r.status = 'in_progress' AND e.status = 'in_progress'
ORDER BY r.report_id, r.research_round
"""
UNFINISHED = {status.value for status in (
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
)}


def fail_abandoned_research(db: StoreSession, run_status) -> list[dict]:
    """Mark `failed` every in-progress research round whose run has finished; the rounds marked.

    `run_status(run_id)` is the Dagster run's status name, None when the instance does not know
    the run (the round is then left alone: it may belong to another Dagster instance).
    """
    failed = []
    for row in db.query(_IN_PROGRESS_RESEARCH):
        status = run_status(row["run_id"])
        if status is None or status in UNFINISHED:
            continue
        lifecycle.check_transition(lifecycle.IN_PROGRESS, lifecycle.FAILED)
        reason = (f"research run {row['run_id']} ended ({status}) before recording an outcome; "
                  "marked failed by the research reconciler")
        team, report, round_ = row["team_id"], row["report_id"], row["research_round"]
        _record(db, team, report, round_,
                _result_row(team, report, round_, lifecycle.FAILED, None, sandbox=row["sandbox"], reason=reason,
                            dagster_run_id=row["run_id"]),
                _event(team, report, round_, "failed", lifecycle.FAILED, detail=reason, seq=2,
                       signals_at_run=row["signals_at_run"]))
        failed.append({**row, "reason": reason})
    return failed


@dg.op(description="Marks research rounds whose run ended without an outcome as failed; removes "
       "research containers of ended runs.")
def reconcile_research(context: dg.OpExecutionContext, clickhouse: ClickHouseResource, sandbox: SandboxResource,
                       object_store: ObjectStoreResource) -> None:
    def run_status(run_id: str) -> str | None:
        run = context.instance.get_run_by_id(run_id) if run_id else None
        return run.status.value if run else None

    with clickhouse.session(log=context.log.info) as db:
        failed = fail_abandoned_research(db, run_status)
    store = object_store.open()
    for row in failed:  # the round has its outcome now
        promotions.promotion_done(store, row["report_id"], row["research_round"])
    removed = sandbox.prune_containers(context.instance)
    context.log.info(f"marked {len(failed)} report(s) failed: {[row['report_id'] for row in failed]}; "
                     f"removed {len(removed)} left-over research container(s)")


@dg.job(description="Fail research rounds whose Dagster run died; clean up their containers.", tags=HOUSEKEEPING_TAGS)
def research_reconciliation_job():
    reconcile_research()


@dg.sensor(
    name="research_reconciler",
    job=research_reconciliation_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When a report run has failed or been cancelled, requests a reconciliation run that "
    "marks reports left in_progress by dead research runs as failed.",
)
def research_reconciler(context: dg.SensorEvaluationContext):
    since = float(context.cursor or 0)
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
