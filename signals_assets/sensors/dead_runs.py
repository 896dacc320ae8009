import contextlib
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.storage.dagster_run import FINISHED_STATUSES
from dagster._core.storage.tags import RUN_KEY_TAG
from dagster._time import get_current_timestamp

from signals_assets.recovery.local_run_launcher import LAUNCHER_HOST_TAG, launcher_pid

HOST_TAG = "signals/host"
# The pid of the process executing the run itself (`signals process` runs in-process, no launcher).
PID_TAG = "signals/pid"
# Set (to the run's own id: Dagster's retries copy their parent's tags) on a dead run that a restart cut
# off: its attempt is not the unit's failure (recovery/attempts.py).
INTERRUPTED_TAG = "signals/interrupted"


# How much earlier than the process's start the time its pid was recorded may read and the process
# still be the run's worker. Wide, because failing a live run starts a second worker on its work: run
# storage may keep whole seconds, and /proc's start times follow the wall clock, which NTP or a resumed
# VM may step forward while the worker runs. A reused pid belongs to a process started far later (pids
# wrap only after tens of thousands of processes, or a restart).
PID_REUSE_SLACK_SECONDS = 300


def run_worker_pid(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[int, float] | None:
    """The pid of the process executing a launched run, with when it was recorded (the worker was
    running by then): what the run launcher's worker logged when it started."""
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        pid = getattr(data, "metadata", {}).get("pid") if data else None
        if pid is not None:
            return int(pid.value), entry.timestamp
    return None


def process_start_time(pid: int) -> tuple[float, float] | None:
    """When process `pid` and the host started (unix times, at most a second early), from /proc; None
    when it cannot be told (no such process, no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot_line = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
    except (OSError, IndexError, StopIteration):
        return None
    boot = int(boot_line.split()[1])
    # fields[0] is the third field of stat (after the pid and the parenthesised name); the 22nd is starttime
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK"), boot


def pid_alive(pid: int, recorded_at: float) -> bool:
    """Whether the run's worker, recorded as `pid` at `recorded_at`, still runs: a process with that pid
    that started after it was recorded, or on a host booted since, is another one, the pid reused."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    times = process_start_time(pid)
    if times is None:
        return True
    started, boot = times
    return boot <= recorded_at and started <= recorded_at + PID_REUSE_SLACK_SECONDS


# A daemon-launched run is STARTING until its worker logs its pid; a kill of the daemon's process group
# in that window leaves it STARTING with no worker. Run monitoring would fail it only after
# start_timeout_seconds (600 s: a run container on a loaded host starts slowly), and batches run one
# at a time, so every batch would wait that long. One whose launcher is gone is failed at once; one
# the live daemon launched (or whose launcher is unknown) gets this long to log its pid: a local worker
# does so within seconds, and 120 s leaves room for a 2-core machine under heavy load. A worker that
# starts after all finds its run failed and exits without executing (Dagster ignores late run
# workers); one that read its run just before it was failed is killed (`stop_late_worker`). A run a
# sensor tick created (NOT_STARTED) but never queued gets the same time: a live daemon queues it at once.
STARTING_GRACE_SECONDS = 120

# What dagster-daemon's run queue (QueuedRunCoordinatorDaemon) is called in the instance's daemon
# heartbeats: it writes one every 30 s while it runs.
QUEUE_DAEMON_TYPE = "QUEUED_RUN_COORDINATOR"


def queue_last_seen(instance: dg.DagsterInstance) -> float:
    """When dagster-daemon's run queue last wrote its heartbeat (unix time; 0 if it never did)."""
    heartbeat = instance.get_daemon_heartbeats().get(QUEUE_DAEMON_TYPE)
    return heartbeat.timestamp if heartbeat else 0.0


@dataclass(frozen=True)
class DeadRun:
    run: dg.DagsterRun
    why: str
    # A restart cut it off: its worker was `signals process` itself, or it was created before this
    # process (the daemon's code server, `signals process`) started, by one that is gone. Else its worker
    # died under a live daemon (killed alone, out of memory): the unit may be what kills it.
    interrupted: bool


def dead_local_runs(instance: dg.DagsterInstance, queued: bool = False) -> list[DeadRun]:
    """Runs of any job whose local worker is gone, with why (the housekeeping jobs and `signals regroup`'s
    hold pool slots too: a dead one left STARTED blocks every run of its pool for good): STARTED,
    STARTING or NOT_STARTED runs whose worker process no longer exists (`signals process` tags a run with
    its pid when it creates it, so a kill before the run starts leaves it NOT_STARTED), STARTING runs with no worker pid logged whose launcher
    is gone, or STARTING_GRACE_SECONDS after launch, STARTING runs of a container launcher that
    `container_never_started` says will get none, and NOT_STARTED runs without a pid that long after
    they were created (the daemon, `signals process` or the host died under them).

    With `queued` (a caller outside the daemon: inside it the queue runs), also runs a sensor queued
    when dagster-daemon's run queue has been silent that long: the daemon that queued them is gone, and
    nothing will start them until one runs again. A manual run (the UI's, no run key) is left queued:
    the operator asked the daemon for it."""
    launched_locally = isinstance(instance.run_launcher, DefaultRunLauncher)
    statuses = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED]
    now = get_current_timestamp()
    dead = []
    if queued:
        statuses.append(dg.DagsterRunStatus.QUEUED)
    queue_seen = None  # read once, when a queued run needs it
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=statuses)):
        run = record.dagster_run
        if run.tags.get(HOST_TAG, socket.gethostname()) != socket.gethostname():
            continue
        created_at = record.create_timestamp.timestamp()
        if run.status == dg.DagsterRunStatus.QUEUED:
            if RUN_KEY_TAG not in run.tags:
                continue
            queue_seen = queue_last_seen(instance) if queue_seen is None else queue_seen
            silent = now - max(created_at, queue_seen)  # the daemon that queued the run was alive then
            if silent >= STARTING_GRACE_SECONDS:
                why = f"queued, and dagster-daemon's run queue has not been seen for {silent:.0f} s"
                dead.append(DeadRun(run, why, True))
            continue
        if run.status == dg.DagsterRunStatus.NOT_STARTED and PID_TAG not in run.tags:
            # Created by a sensor tick but never queued, whatever the launcher: nothing will start it.
            if now - created_at >= STARTING_GRACE_SECONDS:
                dead.append(DeadRun(run, f"not queued {now - created_at:.0f} s after it was created", True))
            continue
        if PID_TAG in run.tags:  # `signals process` was its launcher and its worker
            pid = int(run.tags[PID_TAG])
            if not pid_alive(pid, created_at):
                dead.append(DeadRun(run, f"its worker process {pid} is gone", True))
            continue
        if not launched_locally:  # e.g. a run container: run monitoring watches it, unless it never started
            if run.status == dg.DagsterRunStatus.STARTING and (
                why := container_never_started(instance, run, created_at)
            ):
                dead.append(DeadRun(run, why, True))
            continue
        worker = run_worker_pid(instance, run)
        # Only a dead worker, or a STARTING run with none yet, needs its launcher looked up.
        if (worker is not None and pid_alive(*worker)) or (
            worker is None and run.status != dg.DagsterRunStatus.STARTING
        ):
            continue
        launched_at = launch_time(instance, run, created_at)
        launcher = launcher_pid(run.run_id, run.tags)
        # None: launched by a launcher that does not say (another instance configuration) or killed
        # before it said; known only from how long the run has waited.
        launcher_gone = None if launcher is None else not pid_alive(launcher, launched_at)
        if worker is not None:
            dead.append(DeadRun(run, f"its worker process {worker[0]} is gone", bool(launcher_gone)))
        elif launcher_gone:
            dead.append(DeadRun(run, f"no worker process started, and its launcher {launcher} is gone", True))
        elif now - launched_at >= STARTING_GRACE_SECONDS:
            # A live launcher whose run never started counts; a silent one this late has died.
            why = f"no worker process started {now - launched_at:.0f} s after launch"
            dead.append(DeadRun(run, why, launcher_gone is None))
    return dead


def launch_time(instance: dg.DagsterInstance, run: dg.DagsterRun, created_at: float) -> float:
    """When the run was launched; its creation time while it was not (yet)."""
    return instance.get_run_stats(run.run_id).launch_time or created_at


def container_never_started(instance: dg.DagsterInstance, run: dg.DagsterRun, created_at: float) -> str | None:
    """Why a STARTING run of a container launcher (deploy/dagster.yaml's) will get no worker: its launcher, a
    process on this host, is gone and none of its containers ever started (they are removed). Run
    monitoring would fail it only after start_timeout_seconds (600 s), and every later batch would wait
    that long. None otherwise, or when this cannot be told here (a launcher on another host, an engine
    this process cannot reach): run monitoring decides then."""
    remove_unstarted = getattr(instance.run_launcher, "remove_unstarted_containers", None)
    launcher = launcher_pid(run.run_id, run.tags)
    if remove_unstarted is None or launcher is None or run.tags.get(LAUNCHER_HOST_TAG) != socket.gethostname():
        return None
    if pid_alive(launcher, launch_time(instance, run, created_at)):
        return None
    try:
        found = remove_unstarted(run)
    except Exception:  # the engine's errors (docker-py, requests): left to run monitoring
        return None
    return found and f"{found}, and its launcher {launcher} is gone"


def stop_late_worker(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """Kill the worker of a run just failed, if one logged its pid after all: it read the run before the
    failure, so it would execute the run beside the retry. Dagster's workers check the run's status only
    when they start, so one that reads it after the failure exits by itself."""
    worker = None if PID_TAG in run.tags else run_worker_pid(instance, run)
    if worker is None or not pid_alive(*worker):
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(worker[0], signal.SIGKILL)
    return f"killed worker process {worker[0]} of run {run.run_id}: it started as the run was failed"


def fail_dead_runs(instance: dg.DagsterInstance, queued: bool = False) -> list[str]:
    """Mark the runs whose worker died (with `queued`, also those a gone daemon left queued:
    `dead_local_runs`) as failed, so they are retried, and give back the pool slots of every ended run;
    what was done."""
    done = []
    for dead in dead_local_runs(instance, queued):
        run = dead.run
        if dead.interrupted:  # tagged first: a kill in between leaves it dead, to be decided again
            instance.add_run_tags(run.run_id, {INTERRUPTED_TAG: run.run_id})
        cause = (
            "interrupted: the daemon, `signals process` or the host restarted; not counted as a failed attempt"
            if dead.interrupted
            else "the process that launched it still runs (the worker was killed alone, or ran out of "
            "memory): counted as a failed attempt"
        )
        instance.report_run_failed(run, f"{dead.why} ({cause})")
        done.append(
            f"marked run {run.run_id} ({run.job_name} {run.tags.get('dagster/partition', '')}) failed: {dead.why} ({cause})"
        )
        if late := stop_late_worker(instance, run):
            done.append(late)
    return done + free_slots_of_ended_runs(instance)


def free_slots_of_ended_runs(instance: dg.DagsterInstance) -> list[str]:
    """Free the concurrency slots still held by runs that have ended. A worker frees its slots as its
    steps finish, but one that was killed never does; the daemon's run monitoring frees them only
    after free_slots_after_run_end_seconds, and `signals process` has no daemon, so its next
    execute_in_process would wait at the pool (signals_grouping) forever."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    holders = storage.get_concurrency_run_ids()
    if not holders:
        return []
    ended = instance.get_run_records(filters=dg.RunsFilter(run_ids=list(holders), statuses=FINISHED_STATUSES))
    for record in ended:
        storage.free_concurrency_slots_for_run(record.dagster_run.run_id)
    return [
        f"freed the pool slots of run {r.dagster_run.run_id} ({r.dagster_run.status.value}): it has ended"
        for r in ended
    ]


# Where dagster-daemon's run-retry consumer (EventLogConsumerDaemon) keeps the id of the last run
# failure event it has read, in the instance's daemon cursor storage: the key it spells (the event
# type's value is PIPELINE_FAILURE), kept in every deployment's storage, so stable across releases.
RETRY_CONSUMER_CURSOR = f"EVENT_LOG_CONSUMER_CURSOR-{dg.DagsterEventType.RUN_FAILURE.value}"


def seed_retry_consumer_cursor(instance: dg.DagsterInstance) -> None:
    """Persist the run-retry consumer's cursor at the newest event when it has none. Without one, its
    first iteration starts at whatever event is newest then: a run failed before it (by this
    reconciler, in a daemon restarted after one killed within its first seconds) would get no retry
    from Dagster, only the inbox sensor's own attempt PROMISED_RETRY_GRACE_SECONDS later."""
    storage = instance.daemon_cursor_storage
    if not storage.get_cursor_values({RETRY_CONSUMER_CURSOR}):
        newest = instance.event_log_storage.get_maximum_record_id() or 0
        storage.set_cursor_values({RETRY_CONSUMER_CURSOR: str(newest)})


@dg.sensor(
    name="dead_run_reconciler",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks pipeline runs whose local worker process died (e.g. the daemon was killed) as "
    "failed, so run retries re-execute them instead of leaving them STARTED or STARTING, and frees the "
    "pool slots ended runs still hold.",
)
def dead_run_reconciler(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    seed_retry_consumer_cursor(context.instance)  # before any failure this tick reports
    done = fail_dead_runs(context.instance)
    return dg.SkipReason("; ".join(done) if done else "no dead pipeline runs, no slots held by ended runs")
