"""Bounded partition sets: closed, old partitions are retired; their data stays; nothing open goes."""

import json
import time
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from signals_assets.cli.commands import execute_request
from signals_assets.cli.main import main
from signals_assets.definitions import defs
from signals_assets.housekeeping.retirement import RetentionPolicy
from signals_assets.ingestion import inbox
from signals_assets.jobs import RANGE_END_TAG, RANGE_START_TAG
from signals_assets.partition_keys import batch_key
from signals_assets.partitions import reports, signal_batches
from signals_assets.reports import promotions
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.sensors.partition_retirement import (
    build_partition_retirement_sensor,
    retirement_plan,
)
from signals_assets.sensors.signal_inbox import batch_work
from signals_assets.settings import MAX_RETIRE_DAYS, load_settings
from signals_assets.storage.object_store import LocalObjectStore

from conftest import CARD_DECLINED, PASSWORD_RESET, zendesk_extra

DAY = 86400.0


def apply(instance, plan):
    """What the daemon does with the sensor's delete requests."""
    for request in plan.requests():
        for key in request.partition_keys:
            instance.delete_dynamic_partition(request.partitions_def_name, key)


def run(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def emit_file(capsys, tmp_path, texts, first_id):
    path = tmp_path / f"signals{first_id}.jsonl"
    lines = [
        {"source_product": "zendesk", "source_type": "ticket", "source_id": str(i), "description": text}
        | {"extra": zendesk_extra(i)}
        for i, text in enumerate(texts, start=first_id)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert run(capsys, "emit-file", str(path), "--team-id", "1")[0] == 0


def test_retired_partitions_leave_the_sets_their_data_stays_and_new_work_brings_them_back(
    capsys, signals_home, team, tmp_path, object_store
):
    emit_file(capsys, tmp_path, CARD_DECLINED + PASSWORD_RESET, 0)
    assert run(capsys, "process")[0] == 0
    before = json.loads(run(capsys, "list-reports", "--team-id", "1", "--signals", "--json")[1])
    assert before["count"] == 2

    policy = RetentionPolicy(batches_after_days=1, reports_after_days=1, max_retained=1000)
    with dg.DagsterInstance.get() as instance:
        batches = instance.get_dynamic_partitions(signal_batches.name)
        report_ids = instance.get_dynamic_partitions(reports.name)
        assert len(batches) == 1 and sorted(report_ids) == sorted(r["id"] for r in before["reports"])
        # today nothing is old enough; two days on, the finished batch and both closed reports are
        assert retirement_plan(instance, object_store, policy, time.time()).requests() == []
        plan = retirement_plan(instance, object_store, policy, time.time() + 2 * DAY)
        assert (plan.batches, sorted(plan.reports)) == (batches, sorted(report_ids))
        apply(instance, plan)
        assert instance.get_dynamic_partitions(signal_batches.name) == []
        assert instance.get_dynamic_partitions(reports.name) == []

    after = json.loads(run(capsys, "list-reports", "--team-id", "1", "--signals", "--json")[1])
    assert after == before  # the CLI reads the store: every report, signal and research result is still there
    status = json.loads(run(capsys, "status", "--team-id", "1", "--json")[1])
    assert status["settled"] and status["reports_by_status"] == {"ready": 2}

    # a retired report that gets new signals is promoted again: its partition comes back and it is researched
    emit_file(capsys, tmp_path, ["My card payment was declined at checkout once more."], 100)
    code, out = run(capsys, "process")
    assert code == 0 and json.loads(out)["reports_researched"] == 1
    listing = json.loads(run(capsys, "list-reports", "--team-id", "1", "--json")[1])
    grown = [r for r in listing["reports"] if r["signal_count"] == 4]
    assert len(grown) == 1 and grown[0]["status"] == "ready"
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions(reports.name) == [grown[0]["id"]]


def test_a_report_retired_after_its_run_was_requested_is_researched_by_the_next_run(
    capsys, signals_home, team, tmp_path, object_store
):
    """The retirement sensor plans, the promotion sensor requests a range run over three promoted reports,
    then the plan's deletes land (sensors run in threads): the range resolves without the middle report.
    Its round must not count as done by the run's success; it is researched by the next run."""
    csv_export = ["Exporting my orders to CSV crashes the page.", "The CSV export of orders crashes every time."]
    emit_file(capsys, tmp_path, CARD_DECLINED + PASSWORD_RESET + csv_export + csv_export[:1], 0)
    assert run(capsys, "process")[0] == 0
    more = [
        "My card payment was declined at checkout once more.",
        "Still no password reset email in my inbox.",
        "CSV export of my orders crashed the page again.",
    ]
    emit_file(capsys, tmp_path, more, 100)
    definitions, settings = defs(), load_settings()
    with dg.DagsterInstance.get() as instance:
        inbox.claim_all(object_store, settings.batch_max_signals, settings.max_signals_per_team_batch)
        work = batch_work(instance, object_store, 3, backoff_seconds=0, daemon_retries=False)
        add = work.partitions_request()
        instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys))
        [batch_run] = work.run_requests(instance.get_dynamic_partitions(signal_batches.name))
        assert execute_request(definitions.resolve_job_def("signal_batch_job"), batch_run, instance).success
        promoted = sorted(p["report_id"] for p in promotions.all_promotions(object_store))
        assert len(promoted) == 3
        sensor = definitions.resolve_sensor_def("report_promotion_sensor")
        resource = ObjectStoreResource(root=str(object_store.root))
        [request] = sensor(
            dg.build_sensor_context(instance=instance, resources={"object_store": resource})
        ).run_requests
        order = instance.get_dynamic_partitions(reports.name)
        middle = order[1]
        instance.delete_dynamic_partition(reports.name, middle)  # the retirement plan's delete lands
        result = execute_request(definitions.resolve_job_def("report_job"), request, instance)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
        assert f"{middle}-round2 of this run are not among its partitions" in str(failure.event_specific_data.error)
        # the others of the run were researched; the middle report's round is still pending
        assert [p["report_id"] for p in promotions.all_promotions(object_store)] == [middle]
    code, out = run(capsys, "process")
    assert code == 0 and json.loads(out)["reports_researched"] == 1
    listing = json.loads(run(capsys, "list-reports", "--team-id", "1", "--json")[1])["reports"]
    assert sorted((r["id"], r["status"], r["signal_count"]) for r in listing) == [
        (report, "ready", 4) for report in promoted
    ]
    assert promotions.all_promotions(object_store) == []


def finished_batch(store, key):
    store.put(inbox.manifest_key(key), b"{}")
    for stage in inbox.STAGES:
        inbox.mark_stage_done(store, key, stage)


@pytest.fixture
def store(tmp_path):
    return LocalObjectStore(tmp_path / "objects")


def materialize(instance, report):
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="report_summaries", partition=report))


def test_nothing_open_is_retired(store):
    old = datetime.now(timezone.utc) - timedelta(days=10)
    b_done, b_parked, b_claimed, b_run, b_new = (batch_key(old + timedelta(seconds=i)) for i in range(5))
    b_new = batch_key(datetime.now(timezone.utc))
    finished_batch(store, b_done)
    finished_batch(store, b_run)
    finished_batch(store, b_new)
    store.put(f"claimed/{b_parked}/1/x.json", b"{}")
    inbox.park_batch(store, b_parked, "failed 3 times", 3)
    store.put(f"claimed/{b_claimed}/1/y.json", b"{}")
    r_closed, r_promoted, r_parked, r_running, r_recent, r_never = (f"r1-{i:016x}" for i in range(6))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(signal_batches.name, [b_done, b_parked, b_claimed, b_run, b_new])
        instance.add_dynamic_partitions(reports.name, [r_closed, r_promoted, r_parked, r_running, r_recent, r_never])
        for report in (r_closed, r_promoted, r_parked, r_running):
            materialize(instance, report)
        promotions.record_promotions(store, b_done, [{"report_id": r_promoted, "team_id": 1, "round": 2}])
        promotions.record_promotions(store, b_done, [{"report_id": r_parked, "team_id": 1, "round": 2}])
        promotions.park_promotion(store, promotions.all_promotions(store)[-1], "failed 3 times", 3)
        create_run_for_test(
            instance, "report_job", status=dg.DagsterRunStatus.STARTED, tags={"dagster/partition": r_running}
        )
        create_run_for_test(
            instance, "signal_batch_job", status=dg.DagsterRunStatus.NOT_STARTED, tags={"dagster/partition": b_run}
        )
        time.sleep(1.1)
        cutoff = time.time()
        time.sleep(0.1)
        materialize(instance, r_recent)

        policy = RetentionPolicy(batches_after_days=7, reports_after_days=1, max_retained=1000)
        plan = retirement_plan(instance, store, policy, cutoff + DAY)
        assert (plan.batches, plan.reports) == ([b_done], [r_closed])

        # the count cap retires closed partitions whatever their age, still never an open one
        capped = retirement_plan(instance, store, RetentionPolicy(7, 1, max_retained=0), cutoff + DAY)
        assert (capped.batches, capped.reports) == ([b_done, b_new], [r_closed, r_recent, r_never])

        # the sensor, on the real clock: only the ten-day-old finished batch is old enough
        sensor = build_partition_retirement_sensor(RetentionPolicy(7, 30, 1000))
        resource = ObjectStoreResource(root=str(store.root))
        result = sensor(dg.build_sensor_context(instance=instance, resources={"object_store": resource}))
        [request] = result.dynamic_partitions_requests
        assert (request.partitions_def_name, list(request.partition_keys)) == (signal_batches.name, [b_done])


def test_the_longest_ages_the_settings_allow_retire_nothing_by_age(store):
    old = batch_key(datetime.now(timezone.utc) - timedelta(days=10))
    finished_batch(store, old)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(signal_batches.name, [old])
        instance.add_dynamic_partitions(reports.name, ["r1-0000000000000001"])
        materialize(instance, "r1-0000000000000001")
        policy = RetentionPolicy(MAX_RETIRE_DAYS, MAX_RETIRE_DAYS, max_retained=1000)
        assert retirement_plan(instance, store, policy, time.time()).requests() == []


def test_a_run_over_a_range_holds_its_partitions_and_an_unknown_target_holds_everything(store):
    old = datetime.now(timezone.utc) - timedelta(days=10)
    keys = [batch_key(old + timedelta(seconds=i)) for i in range(4)]
    for key in keys:
        finished_batch(store, key)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(signal_batches.name, keys)
        range_tags = {RANGE_START_TAG: keys[1], RANGE_END_TAG: keys[2]}
        create_run_for_test(instance, "regroup_job", status=dg.DagsterRunStatus.STARTED, tags=range_tags)
        policy = RetentionPolicy(7, 30, 1000)
        assert retirement_plan(instance, store, policy, time.time()).batches == [keys[0], keys[3]]
        gone = {RANGE_START_TAG: "b-gone", RANGE_END_TAG: "b-gone2"}
        create_run_for_test(instance, "regroup_job", status=dg.DagsterRunStatus.STARTING, tags=gone)
        held = retirement_plan(instance, store, policy, time.time())
        assert held.requests() == [] and "cannot be told" in held.held_back


def test_a_partition_added_by_hand_with_an_impossible_date_is_left_alone_and_the_others_retire(store):
    old = batch_key(datetime.now(timezone.utc) - timedelta(days=10))
    finished_batch(store, old)
    typo = "b20261131T000000000000Z"  # 31 November: the batch key format, but no date
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(signal_batches.name, [typo, old])
        sensor = build_partition_retirement_sensor(RetentionPolicy(7, 30, 1000))
        resource = ObjectStoreResource(root=str(store.root))
        result = sensor(dg.build_sensor_context(instance=instance, resources={"object_store": resource}))
        [request] = result.dynamic_partitions_requests
        assert list(request.partition_keys) == [old]


@pytest.mark.parametrize("lands", ["before the runs start", "as a run starts"])
def test_a_report_partition_retired_after_signals_process_decided_its_run_is_added_back_and_researched(
    capsys, signals_home, team, tmp_path, object_store, monkeypatch, lands
):
    """The daemon's retirement tick plans while three reports are closed; `signals process` then promotes
    them again and decides one range run over them; the plan's deletes land before that run starts (the
    daemon deletes key by key), or in the moment it starts. Before, the command died with
    DagsterUnknownPartitionError, or the run's range left the retired report out and the command named
    every report of the run failed. Now each retired report is added back, with a line saying so, and the
    run decided again: all three are researched, nothing left, exit 0."""
    import signals_assets.cli.commands as commands

    csv_export = ["Exporting my orders to CSV crashes the page.", "The CSV export of orders crashes every time."]
    emit_file(capsys, tmp_path, CARD_DECLINED + PASSWORD_RESET + csv_export + csv_export[:1], 0)
    assert run(capsys, "process")[0] == 0
    with dg.DagsterInstance.get() as instance:
        order = instance.get_dynamic_partitions(reports.name)
        plan = retirement_plan(instance, object_store, RetentionPolicy(1, 1, 1000), time.time() + 2 * DAY)
        assert sorted(plan.reports) == sorted(order) and len(order) == 3
    plan.reports = [order[1]] if lands == "before the runs start" else order
    landed = []

    def land_once(instance):
        if not landed:
            landed.append(True)
            apply(instance, plan)

    if lands == "before the runs start":
        add_partitions = commands.add_partitions

        def add_then_land(instance, request):
            add_partitions(instance, request)
            if request.partitions_def_name == reports.name:
                land_once(instance)

        monkeypatch.setattr(commands, "add_partitions", add_then_land)
    else:
        execute = commands.execute_request

        def land_then_execute(job, request, instance):
            if job.name == "report_job":
                land_once(instance)
            return execute(job, request, instance)

        monkeypatch.setattr(commands, "execute_request", land_then_execute)

    more = [
        "My card payment was declined at checkout once more.",
        "Still no password reset email in my inbox.",
        "CSV export of my orders crashed the page again.",
    ]
    emit_file(capsys, tmp_path, more, 100)
    code = main(["process"])
    out, err = capsys.readouterr()
    assert landed and code == 0, err
    assert json.loads(out)["reports_researched"] == 3 and json.loads(out)["reports_failed"] == []
    added_back = [line for line in err.splitlines() if "partition retired after the run was decided" in line]
    assert all(any(report in line for line in added_back) for report in plan.reports), err
    assert promotions.all_promotions(object_store) == []
    listing = json.loads(run(capsys, "list-reports", "--team-id", "1", "--json")[1])["reports"]
    assert [(r["status"], r["signal_count"]) for r in listing] == [("ready", 4)] * 3
    with dg.DagsterInstance.get() as instance:
        assert sorted(instance.get_dynamic_partitions(reports.name)) == sorted(order)
        unstarted = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.NOT_STARTED]))
        assert unstarted == []  # a run Dagster created before it found the range unknown is failed, holds nothing
