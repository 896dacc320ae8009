import os
import socket

import dagster as dg
from dagster._core.launcher import DefaultRunLauncher

from signals_assets.jobs import report_job, signal_batch_job

HOST_TAG = "signals/host"
# The pid of the process executing the run itself (`signals process` runs in-process, no launcher).
PID_TAG = "signals/pid"


def run_worker_pid(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int | None:
    """The pid of the process executing the run: its tag, or what the default run launcher logged."""
    if PID_TAG in run.tags:
        return int(run.tags[PID_TAG])
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
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
    """STARTED runs whose local worker process no longer exists (the daemon, `signals process` or the
    host died under them)."""
    launched_locally = isinstance(instance.run_launcher, DefaultRunLauncher)
    dead = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        if run.job_name not in job_names or run.tags.get(HOST_TAG, socket.gethostname()) != socket.gethostname():
            continue
        if not launched_locally and PID_TAG not in run.tags:  # e.g. a run container: run monitoring watches it
            continue
        pid = run_worker_pid(instance, run)
        if pid is not None and not pid_alive(pid):
            dead.append((run, pid))
    return dead


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark the pipeline runs whose worker died as failed, so they are retried; what was done."""
    dead = dead_local_runs(instance, [signal_batch_job.name, report_job.name])
    for run, pid in dead:
        instance.report_run_failed(run, f"run worker process {pid} is gone (daemon, `signals process` or host restarted)")
    return [f"marked run {run.run_id} ({run.job_name} {run.tags.get('dagster/partition', '')}) failed: "
            f"its worker process {pid} is gone" for run, pid in dead]


@dg.sensor(
    name="dead_run_reconciler",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks pipeline runs whose local worker process died (e.g. the daemon was killed) as "
    "failed, so run retries re-execute them instead of leaving them STARTED forever.",
)
def dead_run_reconciler(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    done = fail_dead_runs(context.instance)
    return dg.SkipReason("; ".join(done) if done else "no dead pipeline runs")
