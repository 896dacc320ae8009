"""Recovery with no operator after a kill -9: each test builds the state a kill leaves behind
directly on a real Dagster instance (sqlite from the shipped settings, or Postgres from the
production ones), the object store and the chdb store, then checks that the pipeline moves on."""

import datetime
import json
import logging
import os
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest
from dagster._core.events import EngineEventData
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.launcher.base import LaunchRunContext
from dagster._core.test_utils import create_run_for_test, freeze_time
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._daemon.types import DaemonHeartbeat

from signals_assets.assets.grouping import GROUPING_POOL, REFUSED_TAG
from signals_assets.assets.reports import ROUNDS_TAG
from signals_assets.cli.commands import ensure_dagster_home, execute_request, record_in_dagster
from signals_assets.cli.main import main
from signals_assets.cli.read_models import store_session
from signals_assets.definitions import defs
from signals_assets.ingestion import inbox
from signals_assets.ingestion.teams import TeamConfig, save_team
from signals_assets.jobs import RANGE_END_TAG, RANGE_START_TAG, TEAM_TAG
from signals_assets.recovery.attempts import INTERRUPTIONS_ALLOWED, Attempt, next_attempt_number, next_step
from signals_assets.recovery.local_run_launcher import LAUNCHER_TAG, LocalRunLauncher, launcher_pid
from signals_assets.reports import promotions
from signals_assets.resources.environment import build_resources
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.sensors import dead_runs
from signals_assets.sensors.dead_runs import (
    HOST_TAG,
    INTERRUPTED_TAG,
    PID_TAG,
    QUEUE_DAEMON_TYPE,
    RETRY_CONSUMER_CURSOR,
    STARTING_GRACE_SECONDS,
    dead_run_reconciler,
    fail_dead_runs,
)
from signals_assets.sensors.report_promotion import build_report_promotion_sensor
from signals_assets.sensors.research_reconciler import research_reconciliation_job
from signals_assets.sensors.run_attempts import (
    MAX_RECORDING_RUNS,
    PROMISED_RETRY_GRACE_SECONDS,
    as_attempt,
    failure_reason,
)
from signals_assets.sensors.signal_inbox import batch_work, build_signal_inbox_sensor
from signals_assets.sensors.unrecorded_work import build_unrecorded_work_sensor
from signals_assets.settings import load_settings
from signals_assets.storage.object_store import LocalObjectStore

from conftest import CARD_DECLINED, PASSWORD_RESET, REPO_ROOT, emit_texts, queued_run

BACKOFF = 60


def shipped_instance(tmp_path, config: str = "local"):
    """A real instance with the shipped settings: deploy/dagster.local.yaml (sqlite) or deploy/dagster.yaml."""
    home = tmp_path / f"dagster_home_{config}"
    home.mkdir()
    name = {"local": "dagster.local.yaml", "production": "dagster.yaml"}[config]
    (home / "dagster.yaml").write_text((REPO_ROOT / "deploy" / name).read_text())
    return dg.DagsterInstance.from_config(str(home))


def batch_run(instance, batch, run_key=None, status=dg.DagsterRunStatus.NOT_STARTED, job_name="signal_batch_job"):
    return create_run_for_test(
        instance,
        job_name=job_name,
        status=status,
        tags={"dagster/run_key": run_key or batch, "dagster/partition": batch},
    )


def failed_run(instance, partition, run_key, job_name="signal_batch_job", refused=False):
    """A run that started and failed (its worker died, or a step raised); Dagster's own retries are spent."""
    run = batch_run(instance, partition, run_key, dg.DagsterRunStatus.STARTED, job_name)
    if refused:
        instance.add_run_tags(run.run_id, {REFUSED_TAG: run.run_id})
    instance.report_run_failed(instance.get_run_by_id(run.run_id), "the worker died")
    instance.add_run_tags(run.run_id, {"dagster/will_retry": "false"})
    return instance.get_run_record_by_id(run.run_id)


@pytest.fixture
def store(tmp_path):
    return LocalObjectStore(tmp_path / "objects")


def claimed_batch(store, name="a") -> str:
    store.put(f"inbox/{name}.json", b'{"signal_id": "x"}')
    return inbox.claim_pending(store, 10, None).new_batches[0]


# --- finding 1: a dead run's pool slot is freed ----------------------------------------------------


@pytest.mark.parametrize("config", ["local", "production"])
def test_the_pool_slot_of_a_run_that_died_in_grouping_is_freed(config, tmp_path, request, monkeypatch):
    from dagster._daemon.monitoring import concurrency

    if config == "production":
        request.getfixturevalue("postgres_database")
        monkeypatch.setenv("SIGNALS_ASSETS_IMAGE", "signals-assets:test")
    with shipped_instance(tmp_path, config) as instance:
        storage = instance.event_log_storage
        run = batch_run(instance, "b20261130T000000000000Z", status=dg.DagsterRunStatus.STARTED)
        storage.initialize_concurrency_limit_to_default("signals_grouping")
        assert storage.claim_concurrency_slot("signals_grouping", run.run_id, "report_assignments").is_claimed
        instance.report_run_failed(instance.get_run_by_id(run.run_id), "run worker process is gone")
        assert storage.get_concurrency_info("signals_grouping").claimed_slots  # held by the dead run

        # what the daemon's run monitoring does on its passes: the README's 30 s after the run ended
        ended = datetime.datetime.now(datetime.timezone.utc)
        daemon_context = type("WorkspaceProcessContext", (), {"instance": instance})()
        for seconds_after_end, held in ((20, True), (35, False)):
            later = ended + datetime.timedelta(seconds=seconds_after_end)
            monkeypatch.setattr(concurrency, "get_current_datetime", lambda later=later: later)
            list(
                concurrency.execute_concurrency_slots_iteration(
                    daemon_context, logger=logging.getLogger("run_monitoring")
                )
            )
            assert bool(storage.get_concurrency_info("signals_grouping").claimed_slots) == held, seconds_after_end


# --- finding 2: a batch is unfinished until its last stage has committed ---------------------------


def test_a_batch_is_unfinished_until_its_grouping_marker_whatever_was_deleted(store):
    batch = claimed_batch(store)
    inbox.consolidate_batch(store, batch, inbox.load_batch(store, batch))  # buffered: the claims are gone
    assert store.list("claimed/") == [] and inbox.unfinished_batches(store) == [batch]
    inbox.mark_stage_done(store, batch, inbox.EMBEDDED)
    [progress] = inbox.batch_progress(store)
    assert progress.next_stage == inbox.GROUPED and not progress.finished
    inbox.mark_stage_done(store, batch, inbox.GROUPED)
    assert inbox.unfinished_batches(store) == []


def test_a_batch_from_before_the_markers_counts_as_finished(store):
    """Consolidated under the old rule (claims gone, no marker): it was finished then, and stays so."""
    store.put(inbox.manifest_key("b20260101T000000000000Z"), b'{"objects": []}')
    store.put(inbox.raw_batch_key("b20260101T000000000000Z"), b"\n")
    assert inbox.unfinished_batches(store) == []


# --- finding 5: a batch whose runs all failed is retried with back-off, then parked ----------------


def test_a_batch_whose_runs_all_failed_is_retried_with_backoff_then_parked(store, tmp_path):
    batch = claimed_batch(store)
    with shipped_instance(tmp_path) as instance:
        assert batch_work(instance, store, 3, BACKOFF).to_run == [(batch, batch)]
        first = failed_run(instance, batch, batch)
        ended = first.end_time

        waiting = batch_work(instance, store, 3, BACKOFF, now=ended + BACKOFF - 1)
        assert waiting.to_run == [] and "retry in" in waiting.waiting[0]
        assert batch_work(instance, store, 3, BACKOFF, now=ended + BACKOFF + 1).to_run == [(batch, f"{batch}-retry1")]

        second = failed_run(instance, batch, f"{batch}-retry1")
        # back-off doubles
        assert batch_work(instance, store, 3, BACKOFF, now=second.end_time + BACKOFF + 1).to_run == []
        assert batch_work(instance, store, 3, BACKOFF, now=second.end_time + 2 * BACKOFF + 1).to_run == [
            (batch, f"{batch}-retry2")
        ]
        third = failed_run(instance, batch, f"{batch}-retry2")

        parked = batch_work(instance, store, 3, BACKOFF, now=third.end_time + 1)
        assert parked.parked_now == [batch] and parked.to_run == []
        record = json.loads(store.get(inbox.parked_key(batch)))
        assert "3 attempt(s) failed" in record["reason"] and "the worker died" in record["reason"]
        assert inbox.unfinished_batches(store) == [] and inbox.unfinished_batches(store, include_parked=True) == [batch]

        inbox.unpark_batch(store, batch)  # the operator's `signals unpark`
        assert batch_work(instance, store, 3, BACKOFF, now=third.end_time + 1).to_run == [(batch, f"{batch}-retry3")]


def test_a_park_reason_says_what_the_step_raised_not_dagsters_wrapper(tmp_path):
    @dg.op
    def embed():
        raise RuntimeError("embeddings: HTTP 500 upstream down")

    @dg.job
    def batch():
        embed()

    with shipped_instance(tmp_path) as instance:
        result = batch.execute_in_process(instance=instance, raise_on_error=False)
        reason = failure_reason(instance, result.run_id)
    assert reason.startswith(f"run {result.run_id}: RuntimeError: embeddings: HTTP 500 upstream down"), reason


def test_the_next_attempt_number_follows_the_units_own_keys_and_ignores_others():
    def attempt(run_key):
        return Attempt(run_key, in_flight=False, succeeded=False, refused=False, ended_at=None)

    unit = "b20260101T000000000000Z"
    assert next_attempt_number(unit, []) == 0
    assert next_attempt_number(unit, [attempt(unit), attempt(f"{unit}-retry2")]) == 3
    assert next_attempt_number(unit, [attempt("another-unit-retry9"), attempt(f"{unit}-retryx")]) == 0


def test_the_sensor_requests_a_failed_batch_again_under_a_new_run_key(store, tmp_path):
    batch = claimed_batch(store)
    sensor = build_signal_inbox_sensor(max_signals_per_batch=10, max_attempts=3, backoff_seconds=0.001)
    resources = {"object_store": ObjectStoreResource(root=str(store.root))}
    with shipped_instance(tmp_path) as instance:
        failed_run(instance, batch, batch)
        result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert [(r.run_key, r.partition_key) for r in result.run_requests] == [(f"{batch}-retry1", batch)]


def test_a_run_the_worker_retries_itself_is_not_requested_twice(store, tmp_path):
    batch = claimed_batch(store)
    with shipped_instance(tmp_path) as instance:
        run = batch_run(instance, batch, status=dg.DagsterRunStatus.STARTED)
        instance.report_run_failed(instance.get_run_by_id(run.run_id), "step failed")
        instance.add_run_tags(run.run_id, {"dagster/will_retry": "true"})  # Dagster's run retry is coming
        assert batch_work(instance, store, 3, 0).in_flight == [batch]
        # `signals process` makes the next attempt itself: the daemon that would retry may not be running
        assert batch_work(instance, store, 3, 0, daemon_retries=False).to_run == [(batch, f"{batch}-retry1")]


# --- finding 4: ordering is enforced, a parked batch blocks nothing -------------------------------


def test_a_later_batch_is_held_while_an_earlier_one_waits_to_retry(store, tmp_path):
    early = claimed_batch(store, "a")
    store.put("inbox/b.json", b'{"signal_id": "y"}')
    late = inbox.claim_pending(store, 10, early).new_batches[0]
    with shipped_instance(tmp_path) as instance:
        ended = failed_run(instance, early, early).end_time
        work = batch_work(instance, store, 3, BACKOFF, now=ended + 1)
        assert work.to_run == [] and work.held == [late]
        # once the back-off has passed the retry is requested first, so it queues ahead of the later batch
        assert batch_work(instance, store, 3, BACKOFF, now=ended + BACKOFF + 1).to_run == [
            (early, f"{early}-retry1"),
            (late, late),
        ]

        # a refusal to group out of order is no failure of the later batch: retried at once, never parked
        for number in range(5):
            failed_run(instance, late, late if number == 0 else f"{late}-retry{number}", refused=True)
        inbox.park_batch(store, early, "test", 3)  # parked: finished for ordering
        assert batch_work(instance, store, 3, BACKOFF, now=ended + 1).to_run == [(late, f"{late}-retry5")]


def test_a_retry_dagster_promised_but_never_launched_stops_counting_as_in_flight(store, tmp_path):
    """A failed run tagged `dagster/will_retry=true` whose retry never came (the daemon died in
    between) held its batch, and every later one, in flight forever; then for the 300 s grace. Once the
    run-retry consumer has read past the failure without retrying it (it drops a failure it reads just
    before the run's status says failed: a fault trial stalled five minutes on one), nothing is owed."""
    batch = claimed_batch(store)
    with shipped_instance(tmp_path) as instance:
        ended = failed_run(instance, batch, batch).end_time
        run_id = instance.get_runs()[0].run_id
        instance.add_run_tags(run_id, {"dagster/will_retry": "true"})
        waiting = batch_work(instance, store, 3, BACKOFF, now=ended + 1)  # no consumer cursor yet: the grace
        assert waiting.to_run == [] and waiting.in_flight == [batch]
        later = ended + PROMISED_RETRY_GRACE_SECONDS + BACKOFF + 1
        assert batch_work(instance, store, 3, BACKOFF, now=later).to_run == [(batch, f"{batch}-retry1")]

        [failure_id] = instance.event_log_storage.get_logs_for_all_runs_by_log_id(
            after_cursor=-1, dagster_event_type={dg.DagsterEventType.RUN_FAILURE}
        )
        cursors = instance.daemon_cursor_storage
        cursors.set_cursor_values({RETRY_CONSUMER_CURSOR: str(failure_id - 1)})  # not read yet: owed
        assert batch_work(instance, store, 3, BACKOFF, now=ended + BACKOFF + 1).in_flight == [batch]
        cursors.set_cursor_values({RETRY_CONSUMER_CURSOR: str(failure_id)})  # read, and not retried
        assert batch_work(instance, store, 3, BACKOFF, now=ended + BACKOFF + 1).to_run == [(batch, f"{batch}-retry1")]


def test_a_retry_made_while_the_sensor_reads_the_runs_is_not_doubled(store, tmp_path, monkeypatch):
    """Dagster's run-retry consumer names its retry on the failed run, then moves its cursor past the
    failure. When that happened between the sensor's read of the runs and its read of the cursor, the
    failure looked read and its retry not coming: the sensor ran the batch itself beside the retry (a
    daemon end-to-end run under load grouped a killed batch twice)."""
    batch = claimed_batch(store)
    with shipped_instance(tmp_path) as instance:
        ended = failed_run(instance, batch, batch).end_time
        failed_id = instance.get_runs()[0].run_id
        instance.add_run_tags(failed_id, {"dagster/will_retry": "true"})
        [failure_id] = instance.event_log_storage.get_logs_for_all_runs_by_log_id(
            after_cursor=-1, dagster_event_type={dg.DagsterEventType.RUN_FAILURE}
        )
        instance.daemon_cursor_storage.set_cursor_values({RETRY_CONSUMER_CURSOR: str(failure_id - 1)})
        read_runs = instance.get_run_records

        def consumer_retries_after_the_read(*args, **kwargs):
            records = read_runs(*args, **kwargs)
            if "dagster/auto_retry_run_id" not in instance.get_run_by_id(failed_id).tags:
                retry = batch_run(instance, batch, batch)  # not started yet
                instance.add_run_tags(failed_id, {"dagster/auto_retry_run_id": retry.run_id})
                instance.daemon_cursor_storage.set_cursor_values({RETRY_CONSUMER_CURSOR: str(failure_id)})
            return records

        monkeypatch.setattr(instance, "get_run_records", consumer_retries_after_the_read)
        work = batch_work(instance, store, 3, BACKOFF, now=ended + BACKOFF + 1)
        assert work.to_run == [] and work.in_flight == [batch]
        monkeypatch.undo()
        # read again, the retry is there
        assert batch_work(instance, store, 3, BACKOFF, now=ended + BACKOFF + 1).in_flight == [batch]


def test_grouping_refuses_while_an_earlier_batch_is_unfinished(signals_home, object_store, team):
    emit_texts(object_store, CARD_DECLINED[:1])
    [early] = inbox.claim_pending(object_store, 10, None).new_batches
    emit_texts(object_store, CARD_DECLINED[1:], start=10)
    [late] = inbox.claim_pending(object_store, 10, early).new_batches
    job = defs().resolve_job_def("signal_batch_job")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("signal_batches", [early, late])
        refused = job.execute_in_process(partition_key=late, instance=instance, raise_on_error=False)
        assert not refused.success
        failure = next(e for e in refused.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
        assert failure.step_key == "report_assignments"
        assert (
            f"batch {late} waits for 1 earlier unfinished batch(es) ({early})"
            in failure.step_failure_data.error.message
        )
        assert instance.get_run_by_id(refused.run_id).tags[REFUSED_TAG] == refused.run_id
        assert not inbox.stage_done(object_store, late, inbox.GROUPED)
        assert inbox.stage_done(object_store, late, inbox.EMBEDDED)  # only the grouping waits

        assert job.execute_in_process(partition_key=early, instance=instance).success
        assert job.execute_in_process(partition_key=late, instance=instance).success
    assert inbox.unfinished_batches(object_store) == []


def test_a_stray_folder_sorting_before_a_batch_does_not_hold_its_grouping_back(signals_home, object_store, team):
    """A tool's folder under claimed/ whose name is no batch key, sorting before every batch: no earlier
    unfinished batch for the grouping to wait for, and left as it is."""
    object_store.put("claimed/archive/1/old.json", b"{}")
    emit_texts(object_store, CARD_DECLINED[:1])
    [batch] = inbox.claim_pending(object_store, 10, None).new_batches
    job = defs().resolve_job_def("signal_batch_job")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("signal_batches", [batch])
        assert job.execute_in_process(partition_key=batch, instance=instance, raise_on_error=False).success
    assert inbox.stage_done(object_store, batch, inbox.GROUPED)
    assert object_store.list("claimed/") == ["claimed/archive/1/old.json"]


# --- finding 3 and the promotion sensor: promotions are durable -------------------------------------


def report_run(instance, rounds: list[str], status=dg.DagsterRunStatus.NOT_STARTED) -> dg.DagsterRun:
    """A report run covering the rounds of these attempt keys."""
    return create_run_for_test(
        instance,
        job_name="report_job",
        status=status,
        tags={"dagster/run_key": "reports-x", ROUNDS_TAG: " ".join(rounds)},
    )


def failed_report_run(instance, rounds: list[str]) -> None:
    run = report_run(instance, rounds, dg.DagsterRunStatus.STARTED)
    instance.report_run_failed(instance.get_run_by_id(run.run_id), "the worker died")
    instance.add_run_tags(run.run_id, {"dagster/will_retry": "false"})


def test_a_pending_promotion_is_requested_until_its_round_is_done(store, tmp_path):
    report, other = "r1-0123456789abcdef", "r1-1123456789abcdef"
    promotions.record_promotions(
        store,
        "b20261130T000000000000Z",
        [{"report_id": report, "team_id": 1, "round": 2}, {"report_id": other, "team_id": 1, "round": 1}],
    )
    sensor = build_report_promotion_sensor(max_attempts=2, backoff_seconds=0.001)
    resources = {"object_store": ObjectStoreResource(root=str(store.root))}
    with shipped_instance(tmp_path) as instance:

        def tick():
            return sensor(dg.build_sensor_context(instance=instance, resources=resources))

        def requested(result) -> list[tuple[list[str], str, str]]:
            return [
                (
                    sorted(r.tags[ROUNDS_TAG].split()),
                    f"{r.tags[RANGE_START_TAG]}...{r.tags[RANGE_END_TAG]}",
                    r.tags[TEAM_TAG],
                )
                for r in result.run_requests
            ]

        first = tick()
        # both rounds in one run over the range of their (new) partitions
        assert requested(first) == [([f"{report}-round2", f"{other}-round1"], f"{report}...{other}", "1")]
        assert first.dynamic_partitions_requests[0].partition_keys == [report, other]
        instance.add_dynamic_partitions("reports", [report, other])
        run = report_run(instance, [f"{report}-round2", f"{other}-round1"])
        assert "2 round(s) in flight" in tick().skip_message

        # the run failed: each round it covered has one failed attempt; both are retried together
        instance.report_run_failed(instance.get_run_by_id(run.run_id), "killed during research")
        instance.add_run_tags(run.run_id, {"dagster/will_retry": "false"})
        assert requested(tick())[0][0] == [f"{report}-round2-retry1", f"{other}-round1-retry1"]
        promotions.promotion_done(store, other, 1)  # the retry ran `other` to its outcome, then died
        failed_report_run(instance, [f"{report}-round2-retry1", f"{other}-round1-retry1"])
        parked = tick()
        assert "parked now: ['r1-0123456789abcdef-round2']" in parked.skip_message
        [record] = promotions.all_promotions(store)
        assert "2 attempt(s) failed" in record["parked"]

        promotions.unpark_promotion(store, record)
        [retry] = tick().run_requests
        assert retry.tags[ROUNDS_TAG] == f"{report}-round2-retry2" and retry.partition_key == report
        promotions.promotion_done(store, report, 2)  # what report_research does once the round has an outcome
        assert promotions.all_promotions(store) == [] and "no promotion to run" in tick().skip_message


def run_cli(capsys, *argv) -> tuple[int, dict, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out), err


@pytest.mark.parametrize("killed_after", ["buffered_signals", "report_assignments"])
def test_signals_process_resumes_what_a_kill_left_half_done(killed_after, capsys, signals_home, object_store, team):
    """Finding 2 (killed after buffering: the claims are gone) and finding 3 (killed after grouping:
    the promotions were only in memory); both used to exit 0 with signals never grouped or reports
    left `candidate` forever."""
    emit_texts(object_store, CARD_DECLINED + PASSWORD_RESET)
    [batch] = inbox.claim_all(object_store, load_settings().batch_max_signals)
    stages = (
        ["buffered_signals"]
        if killed_after == "buffered_signals"
        else ["buffered_signals", "signal_embeddings", "report_assignments"]
    )
    run_stages(batch, stages)
    assert object_store.list("claimed/") == []

    code, status, _ = run_cli(capsys, "status", "--team-id", "1", "--json")
    assert not status["settled"]
    expected = (
        f"batch {batch}: signal_embeddings not done"
        if killed_after == "buffered_signals"
        else "promoted, research not done"
    )
    assert any(expected in line for line in status["unfinished_work"]), status["unfinished_work"]

    code, summary, err = run_cli(capsys, "process")
    assert code == 0, err
    assert summary["reports_researched"] == 2 and summary["unfinished"] == []
    code, status, _ = run_cli(capsys, "status", "--team-id", "1", "--json")
    assert status["settled"] and (status["accepted"], status["assigned"]) == (6, 6)
    assert status["reports_by_status"] == {"ready": 2}


def test_signals_process_executes_the_runs_the_sensors_would_request(capsys, signals_home, object_store, team):
    """`signals process` runs what the sensors decide and request (run key, partition, team tag), plus
    the tags of a run it executes itself."""
    emit_texts(object_store, CARD_DECLINED + PASSWORD_RESET)
    settings = load_settings()
    home = ensure_dagster_home(settings)
    [batch] = inbox.claim_all(object_store, settings.batch_max_signals)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        requested = [(r.run_key, r.partition_key) for r in batch_work(instance, object_store, 3, 0).run_requests()]
    assert requested == [(batch, batch)]

    code, summary, _ = run_cli(capsys, "process")
    assert code == 0 and summary["reports_researched"] == 2
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = {
            job: [r.tags for r in instance.get_runs(dg.RunsFilter(job_name=job))]
            for job in ("signal_batch_job", "report_job")
        }
    assert [(t["dagster/run_key"], t["dagster/partition"]) for t in runs["signal_batch_job"]] == requested
    # one report run for the team's two promoted reports, tagged with both rounds
    [report_run_tags] = runs["report_job"]
    assert report_run_tags[TEAM_TAG] == "1" and len(report_run_tags[ROUNDS_TAG].split()) == 2
    assert all(
        t["dagster/max_retries"] == "0" and t[PID_TAG] == str(os.getpid()) and HOST_TAG in t
        for job_runs in runs.values()
        for t in job_runs
    )


def test_signals_process_exits_non_zero_and_names_a_parked_batch(capsys, signals_home, object_store, team):
    emit_texts(object_store, CARD_DECLINED[:1])
    [batch] = inbox.claim_all(object_store, 10)
    inbox.park_batch(object_store, batch, "3 attempt(s) failed; last: run x: boom", 3)
    code = main(["process"])
    out, err = capsys.readouterr()
    assert code == 1
    assert (
        f"unfinished: batch {batch}: parked (3 attempt(s) failed; last: run x: boom); `signals unpark {batch}`" in err
    )
    assert main(["unpark", batch]) == 0
    capsys.readouterr()
    code, summary, _ = run_cli(capsys, "process")
    assert code == 0 and summary["batches"] == 1 and summary["unfinished"] == []


def run_stages(batch: str, stages: list[str]) -> None:
    """The batch's `stages` of `signal_batch_job`, run in process: what a batch run did before it failed."""
    with dg.DagsterInstance.from_config(str(ensure_dagster_home(load_settings()))) as instance:
        instance.add_dynamic_partitions("signal_batches", [batch])
        job = defs().resolve_job_def("signal_batch_job")
        selection = [dg.AssetKey(s) for s in stages]
        assert job.execute_in_process(partition_key=batch, instance=instance, asset_selection=selection).success


def status_wait(capsys, *more: str) -> tuple[int, dict, str, float]:
    capsys.readouterr()
    started = time.monotonic()
    code, status, err = run_cli(capsys, "status", "--team-id", "1", "--wait", "--json", *more)
    return code, status, err, time.monotonic() - started


@pytest.mark.parametrize("parked_after", [[], ["buffered_signals", "signal_embeddings"]])
def test_status_wait_stops_at_once_when_only_parked_work_is_left(
    parked_after, capsys, signals_home, object_store, team
):
    """A batch holding the team's signals parked after embedding left them accepted and unassigned, and
    `--wait` waited out its --timeout; parked before buffering, it holds no accepted signal, and `--wait`
    said settled (exit 0) with the team's signals parked. Either way only `signals unpark` ends it: the
    wait stops at once, exit 4, naming the batch and the command."""
    emit_texts(object_store, CARD_DECLINED)
    [batch] = inbox.claim_all(object_store, 10)
    if parked_after:
        run_stages(batch, parked_after)
    inbox.park_batch(object_store, batch, "3 attempt(s) failed; last: run x: boom", 3)
    code, status, err, took = status_wait(capsys)  # --timeout: 600 s
    assert (code, status["settled"], status["only_parked_left"]) == (4, False, True) and took < 60
    assert status["parked_for_team"]["batches"] == {batch: len(CARD_DECLINED)}
    assert err == (
        f"status --wait: all that is left of team 1's work is parked: batch {batch} ({len(CARD_DECLINED)} of its "
        "signals); `signals unpark KEY` releases it (once its cause is fixed)\n"
    )
    # More signals expected than emitted and parked: some may still come, so the wait goes on.
    code, status, err, _ = status_wait(capsys, "--timeout", "0", "--expected-signals", str(len(CARD_DECLINED) + 1))
    assert (code, status["only_parked_left"]) == (1, False) and "not settled after --timeout 0 s" in err

    assert main(["unpark", batch]) == 0
    capsys.readouterr()
    assert run_cli(capsys, "process")[0] == 0
    code, status, _, _ = status_wait(capsys)
    assert (code, status["settled"], status["parked_for_team"]["batches"]) == (0, True, {})


def test_status_wait_stops_at_a_parked_report_round_and_ignores_another_teams_parked_batch(
    capsys, signals_home, object_store, team
):
    """A parked report round leaves its report `candidate`: `--wait` stops at once (exit 4) naming the round.
    A parked batch of another team's signals alone is no work of this team: settled."""
    emit_texts(object_store, CARD_DECLINED)
    [batch] = inbox.claim_all(object_store, 10)
    run_stages(batch, ["buffered_signals", "signal_embeddings", "report_assignments"])
    [promotion] = promotions.all_promotions(object_store)
    promotions.park_promotion(object_store, promotion, "3 attempt(s) failed", 3)
    unit = promotions.promotion_unit(promotion["report_id"], promotion["round"])
    code, status, err, took = status_wait(capsys)
    assert (code, status["parked_for_team"]["report_rounds"], took < 60) == (4, [unit], True)
    assert f"parked: report round {unit}; `signals unpark KEY`" in err

    assert main(["unpark", unit]) == 0
    capsys.readouterr()
    assert run_cli(capsys, "process")[0] == 0
    save_team(object_store, TeamConfig(team_id=2, ai_processing_consent=True))
    emit_texts(object_store, PASSWORD_RESET, team_id=2)
    [other] = inbox.claim_all(object_store, 10)
    inbox.park_batch(object_store, other, "3 attempt(s) failed", 3)
    code, status, err, _ = status_wait(capsys, "--timeout", "0")
    assert (code, status["settled"], status["parked_for_team"]) == (
        0,
        True,
        {"batches": {}, "signals_not_buffered": 0, "report_rounds": []},
    ), err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signals_process_interrupted_by_ctrl_c_is_no_failed_attempt(
    signum, capsys, signals_home, object_store, team, tmp_path, monkeypatch
):
    """Ctrl-C of `signals process` in a batch run failed the run as an attempt of the batch (with
    SIGNALS_MAX_ATTEMPTS=1 parked at once; three Ctrl-C parked healthy work), and the command went on to
    research and exited 1 with Dagster's traceback. An interruption is a restart, as a kill is: the run is
    tagged interrupted, the command stops (exit 130), and the next `signals process` completes the batch."""
    emit_texts(object_store, CARD_DECLINED)
    monkeypatch.setenv("SIGNALS_MAX_ATTEMPTS", "1")
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "SIGNALS_FAULT_PAUSE_AT": "buffer", "SIGNALS_FAULT_MARKER_DIR": str(markers)}
    child = subprocess.Popen(
        [sys.executable, "-m", "signals_assets.cli", "process"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not (markers / "buffer.paused").exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (markers / "buffer.paused").exists(), child.communicate()
    child.send_signal(signum)
    out, err = child.communicate(timeout=120)
    assert (child.returncode, out) == (130, b""), err
    assert err.decode().endswith("not counted as a failed attempt; `signals process` resumes it\ninterrupted\n")
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs()
    assert run.tags[dead_runs.INTERRUPTED_TAG] == run.run_id

    code, summary, err = run_cli(capsys, "process")
    assert (code, summary["batches"], summary["unfinished"]) == (0, 1, []), err


def test_signals_process_leaves_a_batch_another_process_runs_and_says_so(capsys, signals_home, object_store, team):
    """Beside the daemon or another `signals process`, a batch whose run is going is left to it; the
    exit is 1 (unfinished), and the line says why rather than only `buffered_signals not done`."""
    emit_texts(object_store, CARD_DECLINED[:1])
    [batch] = inbox.claim_all(object_store, 10)
    with dg.DagsterInstance.from_config(str(ensure_dagster_home(load_settings()))) as instance:
        batch_run(instance, batch, status=dg.DagsterRunStatus.STARTED)  # the daemon's run worker, alive
    code, summary, err = run_cli(capsys, "process")
    assert code == 1 and summary["batches"] == 0
    assert f"batch {batch}: left to the run queued or running for it" in err
    assert summary["unfinished"] == [f"batch {batch}: buffered_signals not done"]


def test_a_run_left_started_by_a_killed_process_is_failed(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    with shipped_instance(tmp_path) as instance:
        run = create_run_for_test(
            instance,
            job_name="report_job",
            status=dg.DagsterRunStatus.STARTED,
            tags={PID_TAG: str(gone.pid), HOST_TAG: os.uname().nodename, "dagster/partition": "r1-0123456789abcdef"},
        )
        alive = create_run_for_test(
            instance, job_name="report_job", status=dg.DagsterRunStatus.STARTED, tags={PID_TAG: str(os.getpid())}
        )
        [line] = fail_dead_runs(instance)
        assert f"worker process {gone.pid} is gone" in line
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED


@pytest.mark.parametrize("job_name", ["research_reconciliation_job", "regroup_job", "__ASSET_JOB"])
def test_a_dead_run_of_any_job_is_failed(tmp_path, job_name):
    """Before, only batch and report runs were: a killed `signals regroup` (its run holds the grouping pool's
    one slot) or a research reconciliation killed with the daemon (the housekeeping pool's) stayed STARTED for
    good, and every later run of its pool queued behind it: no batch was grouped any more."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    with shipped_instance(tmp_path) as instance:
        run = create_run_for_test(
            instance,
            job_name=job_name,
            status=dg.DagsterRunStatus.STARTED,
            tags={PID_TAG: str(gone.pid), HOST_TAG: os.uname().nodename},
        )
        [line] = fail_dead_runs(instance)
        assert f"worker process {gone.pid} is gone" in line
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_run_a_restart_cut_off_is_tagged_interrupted_and_one_whose_worker_died_alone_is_not(tmp_path):
    """A dead run is interrupted when the process that launched it is gone too: a `signals process` run
    (that process was its worker) and a daemon run whose launcher (LocalRunLauncher's tag) is gone. A
    daemon run whose worker died under a live launcher is a failure, and so is one whose launcher is not
    known (a tag copied from another run, or an instance whose launcher does not tag)."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    with shipped_instance(tmp_path) as instance:

        def dead_daemon_run(launcher: int | None, tagged_for: str | None = None) -> dg.DagsterRun:
            run = create_run_for_test(instance, job_name="signal_batch_job", status=dg.DagsterRunStatus.STARTED)
            if launcher is not None:
                instance.add_run_tags(run.run_id, {LAUNCHER_TAG: f"{launcher}/{tagged_for or run.run_id}"})
            instance.report_engine_event("Started process for run", run, EngineEventData.in_process(gone.pid))
            return instance.get_run_by_id(run.run_id)

        process_run = create_run_for_test(
            instance,
            job_name="report_job",
            status=dg.DagsterRunStatus.STARTED,
            tags={PID_TAG: str(gone.pid), HOST_TAG: os.uname().nodename},
        )
        launcher_gone = dead_daemon_run(gone.pid)
        launcher_alive = dead_daemon_run(os.getpid())
        copied_tag = dead_daemon_run(gone.pid, tagged_for=process_run.run_id)
        untagged = dead_daemon_run(None)
        done = fail_dead_runs(instance)
        runs = {
            run.run_id: instance.get_run_by_id(run.run_id)
            for run in (process_run, launcher_gone, launcher_alive, copied_tag, untagged)
        }
        assert all(run.status == dg.DagsterRunStatus.FAILURE for run in runs.values())
        assert {run_id: run.tags.get(INTERRUPTED_TAG) for run_id, run in runs.items()} == {
            process_run.run_id: process_run.run_id,
            launcher_gone.run_id: launcher_gone.run_id,
            launcher_alive.run_id: None,
            copied_tag.run_id: None,
            untagged.run_id: None,
        }
        counted = [line for line in done if "counted as a failed attempt" in line and "not counted" not in line]
        assert len(counted) == 3 and launcher_alive.run_id in counted[0] + counted[1] + counted[2]
        assert len([line for line in done if "not counted as a failed attempt" in line]) == 2
        # Dagster's retry of an interrupted run copies its tags: the copy is no interruption of the retry.
        retry = create_run_for_test(
            instance,
            job_name="signal_batch_job",
            status=dg.DagsterRunStatus.FAILURE,
            tags=runs[launcher_gone.run_id].tags,
        )
        assert as_attempt(instance.get_run_record_by_id(launcher_gone.run_id)).interrupted
        assert not as_attempt(instance.get_run_record_by_id(retry.run_id)).interrupted


def test_the_local_instance_tags_each_run_with_the_process_that_launched_it(tmp_path, monkeypatch):
    """deploy/dagster.local.yaml's launcher records the launching process (the daemon) on the run
    before Dagster's launcher starts its worker, for that run alone (a retry's copy names its parent)."""
    with shipped_instance(tmp_path) as instance:
        assert isinstance(instance.run_launcher, LocalRunLauncher)
        run = create_run_for_test(instance, job_name="signal_batch_job", status=dg.DagsterRunStatus.NOT_STARTED)
        tags_at_start = []
        monkeypatch.setattr(
            DefaultRunLauncher,
            "launch_run",
            lambda self, context: tags_at_start.append(instance.get_run_by_id(context.dagster_run.run_id).tags),
        )
        instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
        assert tags_at_start == [{**run.tags, LAUNCHER_TAG: f"{os.getpid()}/{run.run_id}"}]
        assert launcher_pid(run.run_id, tags_at_start[0]) == os.getpid()
        assert launcher_pid("the-id-of-a-retry", tags_at_start[0]) is None


def test_attempts_cut_off_by_restarts_are_not_counted_until_past_the_allowance():
    """Interrupted attempts neither park a unit nor delay its next attempt; an attempt with any run that
    failed on its own counts; past INTERRUPTIONS_ALLOWED interruptions count, so a unit that kills the
    process running it every time is parked in the end."""

    def attempt(number: int, interrupted: bool, ended_at: float = 100.0) -> Attempt:
        key = "b" if number == 0 else f"b-retry{number}"
        return Attempt(key, in_flight=False, succeeded=False, refused=False, ended_at=ended_at, interrupted=interrupted)

    interrupted = [attempt(n, True) for n in range(5)]
    assert next_step("b", interrupted, now=101, max_attempts=3, backoff_seconds=BACKOFF).run_key == "b-retry5"
    # one run of the attempt interrupted, Dagster's retry of it then failed on its own: it counts
    failed_retry = attempt(5, False)
    decision = next_step(
        "b", [*interrupted, attempt(5, True), failed_retry], now=101, max_attempts=3, backoff_seconds=BACKOFF
    )
    assert (decision.action, decision.failed_attempts) == ("wait", 1)

    many = [attempt(n, True) for n in range(INTERRUPTIONS_ALLOWED + 2)]
    assert next_step("b", many, now=101, max_attempts=3, backoff_seconds=0).action == "run"
    parked = next_step(
        "b", [*many, attempt(INTERRUPTIONS_ALLOWED + 2, True)], now=101, max_attempts=3, backoff_seconds=0
    )
    assert parked.action == "park" and parked.failed_attempts == 3
    assert f"{INTERRUPTIONS_ALLOWED + 3} cut off by restarts ({INTERRUPTIONS_ALLOWED} forgiven)" in parked.detail


def test_a_run_whose_worker_pid_now_belongs_to_a_later_process_is_failed(tmp_path, monkeypatch):
    """The killed worker's pid is reused (pids wrap at 32768 on many hosts, or the host restarted):
    the process holding it now started after the pid was recorded, so it is not the run's worker.
    (The slack is made short here: the shipped one is minutes.)"""
    monkeypatch.setattr(dead_runs, "PID_REUSE_SLACK_SECONDS", 1)
    with shipped_instance(tmp_path) as instance:
        run = create_run_for_test(
            instance,
            job_name="signal_batch_job",
            status=dg.DagsterRunStatus.STARTED,
            tags={HOST_TAG: os.uname().nodename},
        )
        time.sleep(2.5)
        later = subprocess.Popen(["sleep", "60"])
        try:
            instance.add_run_tags(run.run_id, {PID_TAG: str(later.pid)})  # as if the dead worker had this pid
            [line] = fail_dead_runs(instance)
        finally:
            later.kill()
            later.wait()
        assert f"worker process {later.pid} is gone" in line
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_pid_recorded_before_the_host_booted_is_no_worker_of_a_run_and_a_clock_step_keeps_a_live_one():
    """A run recorded before the host's last boot has no worker left, even where its pid is taken again soon
    after the boot; a live worker whose start time reads up to the slack later than its record (the wall
    clock stepped forward under it) still counts as alive."""
    started, boot = dead_runs.process_start_time(os.getpid())
    assert dead_runs.pid_alive(os.getpid(), started)
    assert dead_runs.pid_alive(os.getpid(), max(boot, started - dead_runs.PID_REUSE_SLACK_SECONDS + 1))
    assert not dead_runs.pid_alive(os.getpid(), boot - 1)
    assert not dead_runs.pid_alive(os.getpid(), started - dead_runs.PID_REUSE_SLACK_SECONDS - 1)


@pytest.mark.parametrize("config", ["local", "production"])
def test_a_run_failed_before_the_daemons_retry_consumer_first_ran_is_retried(config, tmp_path, request, monkeypatch):
    """The daemon's run-retry consumer, with no cursor, starts at the newest event: a run the reconciler
    failed before the consumer's first iteration (a daemon killed in its first seconds, then restarted)
    is retried all the same, as the reconciler persists the consumer's start before it fails a run."""
    from dagster._daemon.auto_run_reexecution import auto_run_reexecution
    from dagster._daemon.auto_run_reexecution.event_log_consumer import EventLogConsumerDaemon

    if config == "production":
        request.getfixturevalue("postgres_database")
        monkeypatch.setenv("SIGNALS_ASSETS_IMAGE", "signals-assets:test")
    gone = subprocess.Popen(["true"])
    gone.wait()
    retried = []  # the launch of the retry run, which needs the code location, is not what is tested
    monkeypatch.setattr(auto_run_reexecution, "retry_run", lambda run, context: retried.append(run.run_id))
    with shipped_instance(tmp_path, config) as instance:
        run = batch_run(instance, "b20261130T000000000000Z", status=dg.DagsterRunStatus.STARTED)
        instance.add_run_tags(run.run_id, {PID_TAG: str(gone.pid)})
        assert "is gone" in str(dead_run_reconciler(dg.build_sensor_context(instance=instance)))
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE

        consumer = EventLogConsumerDaemon()
        daemon_context = type("WorkspaceProcessContext", (), {"instance": instance})()
        for _ in range(2):  # its first iteration, then one from the cursor it persisted
            list(consumer.run_iteration(daemon_context))
        assert retried == [run.run_id]


def hold_grouping_slot(instance, run) -> None:
    """What report_assignments does when it starts: it claims the single slot of its pool."""
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(GROUPING_POOL)
    assert storage.claim_concurrency_slot(GROUPING_POOL, run.run_id, "report_assignments").is_claimed


def batch_run_of_a_killed_process(object_store, status: dg.DagsterRunStatus):
    """A claimed batch of signals and its run in `status`, created by a `signals process`
    that is gone: (Dagster home, the run, the dead process)."""
    emit_texts(object_store, CARD_DECLINED + PASSWORD_RESET)
    settings = load_settings()
    home = ensure_dagster_home(settings)
    [batch] = inbox.claim_all(object_store, settings.batch_max_signals)
    gone = subprocess.Popen(["true"])
    gone.wait()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("signal_batches", [batch])
        killed = create_run_for_test(
            instance,
            job_name="signal_batch_job",
            status=status,
            tags={
                "dagster/run_key": batch,
                "dagster/partition": batch,
                PID_TAG: str(gone.pid),
                HOST_TAG: os.uname().nodename,
            },
        )
    return home, killed, gone


@pytest.mark.timeout(300)  # before the fix, `signals process` waited at the pool forever
def test_signals_process_completes_after_a_kill_during_grouping(capsys, signals_home, object_store, team):
    """A `signals process` killed in report_assignments leaves its run STARTED and the grouping pool's
    slot claimed; the next `signals process` fails the run, frees the slot and groups the batch."""
    home, killed, gone = batch_run_of_a_killed_process(object_store, dg.DagsterRunStatus.STARTED)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        hold_grouping_slot(instance, killed)

    code, summary, err = run_cli(capsys, "process")
    assert code == 0, err
    assert f"marked run {killed.run_id}" in err and f"freed the pool slots of run {killed.run_id}" in err
    assert summary["batches"] == 1 and summary["reports_researched"] == 2 and summary["unfinished"] == []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.event_log_storage.get_concurrency_info(GROUPING_POOL).claimed_slots == []


@pytest.mark.timeout(300)
def test_signals_process_completes_after_a_kill_between_creating_a_run_and_starting_it(
    capsys, signals_home, object_store, team
):
    """A `signals process` killed right after it created a batch's run (tagged with its pid, still
    NOT_STARTED): the run counted as in flight forever, so the batch was never requested again and
    every later batch waited behind it (found by a kill at a random time). The next `signals process`
    fails the run and groups the batch."""
    home, killed, gone = batch_run_of_a_killed_process(object_store, dg.DagsterRunStatus.NOT_STARTED)

    code, summary, err = run_cli(capsys, "process")
    assert code == 0, err
    assert f"marked run {killed.run_id}" in err and f"worker process {gone.pid} is gone" in err
    assert summary["batches"] == 1 and summary["reports_researched"] == 2 and summary["unfinished"] == []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_run_a_killed_daemon_created_but_never_queued_is_failed_after_the_grace(tmp_path):
    """The daemon killed between a sensor tick creating a run (NOT_STARTED, no pid) and queueing it:
    run monitoring would fail it only after start_timeout_seconds (600 s), every later batch waiting."""
    with shipped_instance(tmp_path) as instance:
        never_queued = create_run_for_test(
            instance, job_name="signal_batch_job", status=dg.DagsterRunStatus.NOT_STARTED
        )
        assert fail_dead_runs(instance) == []  # inside the grace: the tick may still queue it
        with freeze_time(time.time() + STARTING_GRACE_SECONDS + 1):
            [line] = fail_dead_runs(instance)
        assert f"marked run {never_queued.run_id}" in line and "not queued" in line
        assert instance.get_run_by_id(never_queued.run_id).status == dg.DagsterRunStatus.FAILURE


def test_runs_a_gone_daemon_left_queued_are_failed_for_signals_process_after_the_grace(tmp_path):
    """The daemon killed with sensor runs still in its queue: nothing starts them until a daemon runs
    again, so `signals process` (which asks for `queued`) left their batches to them and exited 1 every
    time. Once the run queue has been silent for the grace, they are failed as interrupted and the work
    is its own; a manual run (no run key) stays queued for the daemon, and the reconciler the daemon
    itself evaluates never judges its own queue."""
    with shipped_instance(tmp_path) as instance:
        keyed = queued_run(instance, "signal_batch_job", {"dagster/run_key": "b1"})
        manual = queued_run(instance, "report_job", {})
        now = time.time()
        instance.add_daemon_heartbeat(DaemonHeartbeat(now, QUEUE_DAEMON_TYPE, "daemon-1", None))
        with freeze_time(now + STARTING_GRACE_SECONDS - 1):
            assert fail_dead_runs(instance, queued=True) == []
        with freeze_time(now + STARTING_GRACE_SECONDS + 1):
            assert fail_dead_runs(instance) == []  # the reconciler the daemon evaluates
        seen_again = now + STARTING_GRACE_SECONDS  # e.g. a restarted daemon: it will dequeue them
        instance.add_daemon_heartbeat(DaemonHeartbeat(seen_again, QUEUE_DAEMON_TYPE, "daemon-2", None))
        with freeze_time(now + STARTING_GRACE_SECONDS + 1):
            assert fail_dead_runs(instance, queued=True) == []
        with freeze_time(seen_again + STARTING_GRACE_SECONDS + 1):
            [line] = fail_dead_runs(instance, queued=True)
        assert f"marked run {keyed.run_id}" in line and "run queue has not been seen for 121 s" in line
        assert "not counted as a failed attempt" in line
        assert instance.get_run_by_id(keyed.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(keyed.run_id).tags[INTERRUPTED_TAG] == keyed.run_id
        assert instance.get_run_by_id(manual.run_id).status == dg.DagsterRunStatus.QUEUED


def test_the_queue_daemon_is_named_as_dagster_names_it():
    assert QueuedRunCoordinatorDaemon.daemon_type() == QUEUE_DAEMON_TYPE


def test_signals_process_takes_over_a_batch_a_killed_daemon_left_queued(
    capsys, monkeypatch, signals_home, object_store, team
):
    """A batch run the daemon's sensor queued before the daemon was killed, never dequeued: the next
    `signals process` fails it (no daemon has run the queue since) and groups the batch itself."""
    emit_texts(object_store, CARD_DECLINED + PASSWORD_RESET)
    settings = load_settings()
    home = ensure_dagster_home(settings)
    [batch] = inbox.claim_all(object_store, settings.batch_max_signals)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("signal_batches", [batch])
        left = queued_run(instance, "signal_batch_job", {"dagster/run_key": batch, "dagster/partition": batch})
    code, summary, err = run_cli(capsys, "process")
    assert code == 1 and f"batch {batch}: left to the run queued or running for it" in err  # inside the grace

    later = time.time() + STARTING_GRACE_SECONDS + 1
    monkeypatch.setattr(dead_runs, "get_current_timestamp", lambda: later)
    code, summary, err = run_cli(capsys, "process")
    assert code == 0, err
    assert f"marked run {left.run_id}" in err and "run queue has not been seen" in err
    assert summary["batches"] == 1 and summary["reports_researched"] == 2 and summary["unfinished"] == []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(left.run_id).status == dg.DagsterRunStatus.FAILURE


def starting_run(instance, tags: dict | None = None) -> dg.DagsterRun:
    """A run the daemon dequeued and launched (STARTING, with a launch time) whose worker has not
    reported it STARTED."""
    run = create_run_for_test(instance, job_name="signal_batch_job", status=dg.DagsterRunStatus.NOT_STARTED, tags=tags)
    instance.report_dagster_event(
        dg.DagsterEvent(dg.DagsterEventType.RUN_STARTING.value, job_name=run.job_name), run_id=run.run_id
    )
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTING
    return run


def test_a_run_killed_while_starting_is_failed_after_the_grace_and_its_slot_freed(tmp_path):
    """The daemon killed between dequeuing a run and its worker logging a pid: the run stayed STARTING
    for start_timeout_seconds (600 s), and every later batch waited behind it."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    with shipped_instance(tmp_path) as instance:
        no_worker = starting_run(instance)
        hold_grouping_slot(instance, no_worker)
        worker_gone = starting_run(instance)
        instance.report_engine_event(
            f"Started process for run (pid: {gone.pid}).", worker_gone, EngineEventData.in_process(gone.pid)
        )
        alive = starting_run(instance)
        instance.report_engine_event("Started process for run", alive, EngineEventData.in_process(os.getpid()))

        [line] = fail_dead_runs(instance)  # inside the grace only the run whose worker pid is dead
        assert f"marked run {worker_gone.run_id}" in line and f"worker process {gone.pid} is gone" in line
        assert instance.get_run_by_id(no_worker.run_id).status == dg.DagsterRunStatus.STARTING
        assert instance.event_log_storage.get_concurrency_info(GROUPING_POOL).claimed_slots

        with freeze_time(time.time() + STARTING_GRACE_SECONDS + 1):
            done = fail_dead_runs(instance)
        assert len(done) == 2
        assert f"marked run {no_worker.run_id}" in done[0] and "no worker process started" in done[0]
        assert f"freed the pool slots of run {no_worker.run_id}" in done[1]
        assert instance.get_run_by_id(no_worker.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.event_log_storage.get_concurrency_info(GROUPING_POOL).claimed_slots == []
        assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTING


def test_a_starting_run_whose_launcher_is_gone_is_failed_at_once_and_one_a_live_launcher_started_waits(tmp_path):
    """A kill of the daemon between launching a run and its worker logging a pid: that run will get no
    worker, so it is failed at the next look, not STARTING_GRACE_SECONDS later (a trial's settle was
    three minutes of it), and its attempt is not counted. A run the live launcher started is slow, not
    dead: it gets the grace, and then counts."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    with shipped_instance(tmp_path) as instance:
        orphaned = starting_run(instance)
        instance.add_run_tags(orphaned.run_id, {LAUNCHER_TAG: f"{gone.pid}/{orphaned.run_id}"})
        slow = starting_run(instance)
        instance.add_run_tags(slow.run_id, {LAUNCHER_TAG: f"{os.getpid()}/{slow.run_id}"})

        [line] = fail_dead_runs(instance)
        assert f"marked run {orphaned.run_id}" in line and f"its launcher {gone.pid} is gone" in line
        assert "not counted as a failed attempt" in line
        assert instance.get_run_by_id(orphaned.run_id).tags[INTERRUPTED_TAG] == orphaned.run_id
        assert instance.get_run_by_id(slow.run_id).status == dg.DagsterRunStatus.STARTING

        with freeze_time(time.time() + STARTING_GRACE_SECONDS + 1):
            [line] = fail_dead_runs(instance)
        assert f"marked run {slow.run_id}" in line and "no worker process started" in line
        assert "counted as a failed attempt" in line and "not counted" not in line
        assert INTERRUPTED_TAG not in instance.get_run_by_id(slow.run_id).tags


def test_a_worker_that_starts_as_its_run_is_failed_is_killed(tmp_path, monkeypatch):
    """Dagster's worker reads its run once, then logs its pid and executes: one that read the run just
    before the reconciler failed it would run beside the retry. Its pid, logged after the reconciler
    looked, is seen once the run is failed, and the process is killed."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    worker = subprocess.Popen(["sleep", "120"])
    try:
        with shipped_instance(tmp_path) as instance:
            run = starting_run(instance)
            instance.add_run_tags(run.run_id, {LAUNCHER_TAG: f"{gone.pid}/{run.run_id}"})
            fail = instance.report_run_failed

            def worker_logs_its_pid_meanwhile(failed_run, message):
                instance.report_engine_event("Started process for run", run, EngineEventData.in_process(worker.pid))
                return fail(failed_run, message)

            monkeypatch.setattr(instance, "report_run_failed", worker_logs_its_pid_meanwhile)
            done = fail_dead_runs(instance)
            assert worker.wait(timeout=30) == -signal.SIGKILL
            assert f"killed worker process {worker.pid} of run {run.run_id}" in done[1]
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
            assert len(fail_dead_runs(instance)) == 0  # nothing left to do
    finally:
        worker.kill()
        worker.wait()


# --- finding 6: housekeeping never queues behind bulk work ------------------------------------------


@pytest.mark.parametrize("config", ["local", "production"])
def test_the_research_reconciliation_dequeues_ahead_of_a_report_backlog(config, tmp_path, request, monkeypatch):
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    if config == "production":
        request.getfixturevalue("postgres_database")
        monkeypatch.setenv("SIGNALS_ASSETS_IMAGE", "signals-assets:test")
    jobs = defs()
    report_tags = dict(jobs.resolve_job_def("report_job").tags)
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    with shipped_instance(tmp_path, config) as instance:

        def dequeue() -> list[str]:
            """One pass of the run queue; the runs it launches are started."""
            runs = daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)
            for run in runs:
                instance.delete_run(run.run_id)
                create_run_for_test(
                    instance,
                    job_name=run.job_name,
                    run_id=run.run_id,
                    tags=run.tags,
                    status=dg.DagsterRunStatus.STARTED,
                )
            return [run.run_id for run in runs]

        create_run_for_test(
            instance,
            job_name="signal_batch_job",
            status=dg.DagsterRunStatus.STARTED,
            tags=dict(jobs.resolve_job_def("signal_batch_job").tags),
        )
        backlog = [queued_run(instance, "report_job", {**report_tags, "signals/team": str(team)}) for team in range(20)]
        while dequeue():  # the backlog takes every slot the instance lets it take
            pass
        assert any(instance.get_run_by_id(r.run_id).status == dg.DagsterRunStatus.QUEUED for r in backlog)

        housekeeping = queued_run(instance, research_reconciliation_job.name, dict(research_reconciliation_job.tags))
        assert dequeue() == [housekeeping.run_id]


def test_a_second_attempt_at_a_grouped_batch_leaves_it_grouped(capsys, signals_home, object_store, team):
    """Two `signals process` deciding at once both run a batch (so does the retry of a range run killed
    after grouping its first batch). The second grouping read the batch's reports as their research
    had left them since (ready) and promoted them to a new round: researched again, the batch's
    lifecycle events rewritten. An attempt at a batch already grouped now leaves it as it is."""
    settings = load_settings()
    home = ensure_dagster_home(settings)
    emit_texts(object_store, CARD_DECLINED[:1])
    [first] = inbox.claim_all(object_store, settings.batch_max_signals)
    emit_texts(object_store, CARD_DECLINED[1:], start=1)
    [second] = inbox.claim_all(object_store, settings.batch_max_signals)
    assert second > first
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [request] = batch_work(instance, object_store, 3, 0, daemon_retries=False).run_requests(max_batches_per_run=1)[
            1:
        ]
    code, summary, err = run_cli(capsys, "process")
    assert code == 0 and summary["batches"] == 2 and summary["reports_researched"] == 1, err
    with store_session(settings) as db:
        events = db.query("SELECT * EXCEPT at FROM report_events ORDER BY report_id, stage, research_round, seq")

    # The other `signals process` runs the second batch now.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = execute_request(defs().resolve_job_def("signal_batch_job"), request, instance)
    assert result.success
    assert promotions.all_promotions(object_store) == []
    with store_session(settings) as db:
        assert (
            db.query("SELECT * EXCEPT at FROM report_events ORDER BY report_id, stage, research_round, seq") == events
        )
    # Nor is it screened or embedded again: every step of the attempt records it as it is.
    for step in ("buffered_signals", "signal_embeddings", "report_assignments"):
        [materialised] = result.asset_materializations_for_node(step)
        assert materialised.partition == second
        assert materialised.metadata["skipped"].value.startswith(f"{second} was grouped by run "), step


def grouped_unseen(object_store, settings) -> str:
    """A batch of CARD_DECLINED grouped by a run that the platform's instance never saw: its work is in the
    store, with no materialisation."""
    emit_texts(object_store, CARD_DECLINED)
    [batch] = inbox.claim_all(object_store, settings.batch_max_signals)
    with dg.DagsterInstance.ephemeral() as elsewhere:
        elsewhere.add_dynamic_partitions("signal_batches", [batch])
        assert (
            defs()
            .resolve_job_def("signal_batch_job")
            .execute_in_process(partition_key=batch, instance=elsewhere)
            .success
        )
    assert inbox.unfinished_batches(object_store) == []
    return batch


def test_signals_process_records_a_batch_a_failed_attempt_grouped_but_never_materialised(
    capsys, signals_home, object_store, team
):
    """A kill between a batch's grouping and the end of its step (or a later batch of its range run
    failing) left the batch grouped in the store with no `report_assignments` materialisation: the UI
    showed it failed. The daemon's retry of the run records it; `signals process` has no such retry, so
    it runs the batch once more as an attempt, whose steps skip it as grouped and record it."""
    settings = load_settings()
    batch = grouped_unseen(object_store, settings)
    assignments = dg.AssetKey("report_assignments")
    home = str(ensure_dagster_home(settings))
    with dg.DagsterInstance.from_config(home) as instance:
        instance.add_dynamic_partitions("signal_batches", [batch])
        # A failed manual run (a backfill: no run key) is the operator's to run again.
        tags = {"dagster/partition": batch}
        create_run_for_test(instance, job_name="signal_batch_job", tags=tags, status=dg.DagsterRunStatus.FAILURE)
    code, summary, err = run_cli(capsys, "process")
    assert code == 0 and "unrecorded" not in err, err
    with dg.DagsterInstance.from_config(home) as instance:
        filter_ = dg.AssetRecordsFilter(asset_key=assignments, asset_partitions=[batch])
        assert instance.fetch_materializations(filter_, limit=5).records == []
        attempt = failed_run(instance, batch, batch).dagster_run
        # Under the daemon the sensor requests the same run, once Dagster no longer retries the attempt.
        sensor = build_unrecorded_work_sensor()
        resources = {name: build_resources(settings)[name] for name in ("object_store", "clickhouse")}
        instance.add_run_tags(attempt.run_id, {"dagster/will_retry": "true"})
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            assert "has its materialisation" in sensor(context).skip_message
        # Nor while that retry (its parent's run key) is queued or running: it records the batch.
        retry = batch_run(instance, batch, batch, dg.DagsterRunStatus.STARTED)
        instance.add_run_tags(attempt.run_id, {"dagster/auto_retry_run_id": retry.run_id})
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            assert "a run of it queued or running" in sensor(context).skip_message
        instance.report_run_failed(instance.get_run_by_id(retry.run_id), "the worker died")
        instance.add_run_tags(retry.run_id, {"dagster/will_retry": "false"})
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            [request] = sensor(context)
        assert (request.job_name, request.run_key, request.partition_key) == (
            "signal_batch_job",
            f"{batch}-recorded",
            batch,
        )

    code, summary, err = run_cli(capsys, "process")
    assert code == 0 and summary["batches"] == 0, err
    assert f"batch(es) {batch}…{batch}: done by a failed run, unrecorded in Dagster: recorded" in err
    with dg.DagsterInstance.from_config(home) as instance:
        [recorded] = instance.fetch_materializations(filter_, limit=5).records
        materialisation = recorded.asset_materialization
        assert materialisation.metadata["skipped"].value.startswith(f"{batch} was grouped by run ")
        assert instance.get_run_by_id(recorded.run_id).tags["dagster/run_key"] == f"{batch}-recorded"

    # Recorded once: the next `signals process` has nothing to record.
    code, summary, err = run_cli(capsys, "process")
    assert code == 0 and "unrecorded" not in err, err


def test_a_failed_recording_run_is_followed_by_a_numbered_one_until_the_limit(signals_home, object_store, team):
    """The daemon never requests a run key twice: after a recording run fails (killed, or a step raised),
    the sensor requests the next number, up to MAX_RECORDING_RUNS; then the batch is the operator's."""
    settings = load_settings()
    batch = grouped_unseen(object_store, settings)
    sensor = build_unrecorded_work_sensor()
    resources = {name: build_resources(settings)[name] for name in ("object_store", "clickhouse")}
    with dg.DagsterInstance.from_config(str(ensure_dagster_home(settings))) as instance:
        instance.add_dynamic_partitions("signal_batches", [batch])
        failed_run(instance, batch, batch)
        for failed, next_key in [
            (None, f"{batch}-recorded"),
            (f"{batch}-recorded", f"{batch}-recorded2"),
            (f"{batch}-recorded2", f"{batch}-recorded3"),
        ]:
            if failed:
                failed_run(instance, batch, failed)
            with dg.build_sensor_context(instance=instance, resources=resources) as context:
                [request] = sensor(context)
            assert (request.run_key, request.partition_key) == (next_key, batch)
        failed_run(instance, batch, f"{batch}-recorded{MAX_RECORDING_RUNS}")
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            assert "has its materialisation" in sensor(context).skip_message


def test_a_recording_run_whose_partition_was_retired_as_it_started_says_so_and_holds_nothing(capsys, signals_home):
    """The partition-retirement sensor may retire the batch between the decision and the run: the run
    is failed unstarted, the command goes on."""
    retired = "b20261130T000000000000Z"
    request = dg.RunRequest(run_key=f"{retired}-recorded", partition_key=retired)
    with dg.DagsterInstance.from_config(str(ensure_dagster_home(load_settings()))) as instance:
        record_in_dagster(defs().resolve_job_def("signal_batch_job"), request, instance, f"batch {retired}")
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/run_key": request.run_key}))
        assert all(run.status == dg.DagsterRunStatus.FAILURE for run in runs), runs  # none left to wait for
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            f"batch {retired}: done by a failed run, unrecorded in Dagster: its partitions were retired as it "
            "started, not recorded"
        )
    )


def test_signals_process_records_the_reports_a_failed_attempt_researched_but_never_materialised(
    capsys, signals_home, object_store, team, monkeypatch, tmp_path
):
    """A report run killed after some of its reports' research outcomes, before its step recorded them,
    left those reports researched in the store and failed in the UI. `signals process` runs each once
    more as an attempt at the same round, whose steps leave the round as it is and record the report."""
    emit_texts(object_store, CARD_DECLINED + PASSWORD_RESET)
    code, summary, err = run_cli(capsys, "process")
    assert code == 0 and summary["reports_researched"] == 2, err
    with store_session(load_settings()) as db:
        researched = [r["report_id"] for r in db.query("SELECT report_id FROM research_results ORDER BY report_id")]
    assert len(researched) == 2
    # The same store, and an instance where the attempt at both rounds failed before recording them.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "another_dagster_home"))
    home = str(ensure_dagster_home(load_settings()))
    tags = {
        "dagster/run_key": "reports-1-killed",
        ROUNDS_TAG: " ".join(f"{report}-round1" for report in researched),
        TEAM_TAG: "1",
        RANGE_START_TAG: researched[0],
        RANGE_END_TAG: researched[-1],
    }
    # The first report's recording run failed too: the next is numbered (the daemon never requests a key twice).
    first_recording = {
        "dagster/run_key": f"{researched[0]}-round1-recorded",
        ROUNDS_TAG: f"{researched[0]}-round1",
        TEAM_TAG: "1",
        "dagster/partition": researched[0],
    }
    with dg.DagsterInstance.from_config(home) as instance:
        instance.add_dynamic_partitions("reports", researched)
        create_run_for_test(instance, job_name="report_job", tags=tags, status=dg.DagsterRunStatus.FAILURE)
        create_run_for_test(instance, job_name="report_job", tags=first_recording, status=dg.DagsterRunStatus.FAILURE)

    code, summary, err = run_cli(capsys, "process")
    assert code == 0 and summary["reports_researched"] == 0, err
    for report in researched:
        assert f"report {report}: done by a failed run, unrecorded in Dagster: recorded" in err
    with dg.DagsterInstance.from_config(home) as instance:
        for report, run_key in zip(researched, ["-round1-recorded2", "-round1-recorded"]):
            filter_ = dg.AssetRecordsFilter(asset_key=dg.AssetKey("report_research"), asset_partitions=[report])
            [recorded] = instance.fetch_materializations(filter_, limit=5).records
            assert "skipped" in recorded.asset_materialization.metadata, report
            assert instance.get_run_by_id(recorded.run_id).tags["dagster/run_key"] == f"{report}{run_key}"
    with store_session(load_settings()) as db:  # nothing researched again
        assert [
            r["report_id"] for r in db.query("SELECT report_id FROM research_results ORDER BY report_id")
        ] == researched
    code, summary, err = run_cli(capsys, "process")
    assert code == 0 and "unrecorded" not in err, err


def test_a_failed_attempt_at_two_rounds_of_a_report_is_recorded_at_the_reports_current_round(
    capsys, signals_home, object_store, team, monkeypatch, tmp_path
):
    """One report run may hold two rounds of a report (an earlier round's retry beside the new round). A
    kill after the new round's research left the report unrecorded: the recording run is the attempt at
    the report's current round, whichever of the run's keys comes first."""
    emit_texts(object_store, CARD_DECLINED)
    code, summary, err = run_cli(capsys, "process")
    assert code == 0 and summary["reports_researched"] == 1, err
    emit_texts(object_store, ["Card payment at checkout was declined once more."], start=len(CARD_DECLINED))
    code, summary, err = run_cli(capsys, "process")
    assert code == 0 and summary["reports_researched"] == 1, err
    with store_session(load_settings()) as db:
        rounds = [
            (r["report_id"], int(r["research_round"]))
            for r in db.query("SELECT report_id, research_round FROM research_results ORDER BY research_round")
        ]
    report = rounds[0][0]
    assert rounds == [(report, 1), (report, 2)]  # the card-declined report, researched again in its second round
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "another_dagster_home"))
    home = str(ensure_dagster_home(load_settings()))
    tags = {
        "dagster/run_key": "reports-1-killed",
        ROUNDS_TAG: f"{report}-round1-retry2 {report}-round2",
        TEAM_TAG: "1",
        "dagster/partition": report,
    }
    with dg.DagsterInstance.from_config(home) as instance:
        instance.add_dynamic_partitions("reports", [report])
        create_run_for_test(instance, job_name="report_job", tags=tags, status=dg.DagsterRunStatus.FAILURE)

    code, summary, err = run_cli(capsys, "process")
    assert code == 0 and summary["reports_researched"] == 0, err
    assert f"report {report}: done by a failed run, unrecorded in Dagster: recorded" in err
    with dg.DagsterInstance.from_config(home) as instance:
        filter_ = dg.AssetRecordsFilter(asset_key=dg.AssetKey("report_research"), asset_partitions=[report])
        [recorded] = instance.fetch_materializations(filter_, limit=5).records
        run = instance.get_run_by_id(recorded.run_id)
        assert run.tags["dagster/run_key"] == f"{report}-round2-recorded" and run.tags[ROUNDS_TAG] == f"{report}-round2"
