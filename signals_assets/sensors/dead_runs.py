import os
import socket

import dagster as dg
from dagster._core.launcher import DefaultRunLauncher

from signals_assets.jobs import report_job, signal_batch_job

HOST_TAG = "signals/host"


def run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid the default run launcher logged when it started the run's process."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        pid = getattr(data, "metadata", {}).get("pid") if data else None
        if pid is not None:
            return int(pid.value)
    return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_local_runs(instance: dg.DagsterInstance, job_names: list[str]) -> list[tuple[dg.DagsterRun, int]]:
    """STARTED runs whose local worker process no longer exists (the daemon or host died under them)."""
    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return []
    dead = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        if run.job_name not in job_names or run.tags.get(HOST_TAG, socket.gethostname()) != socket.gethostname():
            continue
        pid = run_worker_pid(instance, run.run_id)
        if pid is not None and not pid_alive(pid):
            dead.append((run, pid))
    return dead


@dg.sensor(
    name="dead_run_reconciler",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks pipeline runs whose local worker process died (e.g. the daemon was killed) as "
    "failed, so run retries re-execute them instead of leaving them STARTED forever.",
)
def dead_run_reconciler(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    dead = dead_local_runs(context.instance, [signal_batch_job.name, report_job.name])
    for run, pid in dead:
        context.instance.report_run_failed(run, f"run worker process {pid} is gone (daemon or host restarted)")
    return dg.SkipReason(
        f"marked {len(dead)} dead run(s) as failed: {[run.run_id for run, _ in dead]}" if dead
        else "no dead pipeline runs"
    )
