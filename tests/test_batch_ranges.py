"""One batch run over a partition range of consecutive batches: what `signals process` and the inbox
sensor request when several batches wait. Each batch keeps its own materialisation and metadata, the
tables are those of one run per batch, a batch that fails inside a range costs the others nothing but
an attempt, and attempts are counted per batch across single and range runs."""

import json

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from signals_assets.cli.commands import ensure_dagster_home
from signals_assets.cli.main import main
from signals_assets.definitions import defs
from signals_assets.ingestion import inbox
from signals_assets.jobs import RANGE_END_TAG, RANGE_START_TAG, batch_attempt_tag
from signals_assets.partition_keys import SIGNAL_BATCHES
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.sensors.run_attempts import batch_attempts
from signals_assets.sensors.signal_inbox import batch_work, build_signal_inbox_sensor
from signals_assets.settings import load_settings
from signals_assets.storage.clickhouse import open_chdb

from conftest import CARD_DECLINED, PASSWORD_RESET, emit_texts
from test_pipeline import snapshot
from test_recovery import failed_run, shipped_instance

BATCH_NODES = ("buffered_signals", "signal_embeddings", "report_assignments")


@pytest.fixture
def three_batches(object_store, team, monkeypatch) -> list[str]:
    """Six signals of team 1 claimed two by two: three consecutive batches."""
    monkeypatch.setenv("SIGNALS_BATCH_MAX_SIGNALS", "2")
    emit_texts(object_store, CARD_DECLINED + PASSWORD_RESET)
    batches = inbox.claim_all(object_store, 2)
    assert len(batches) == 3
    return batches


def range_tags(first: str, last: str) -> dict:
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


def test_a_range_run_materialises_each_batch_with_its_own_metadata_and_the_tables_of_single_runs(
    object_store, three_batches
):
    definitions = defs()
    job = definitions.resolve_job_def("signal_batch_job")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SIGNAL_BATCHES, three_batches)
        result = job.execute_in_process(instance=instance, tags=range_tags(three_batches[0], three_batches[-1]))
        assert result.success
        in_range = snapshot()
        for node in BATCH_NODES:
            events = result.asset_materializations_for_node(node)
            assert sorted(e.partition for e in events) == three_batches, node
            assert {e.metadata["batches_in_run"].value for e in events} == {3}
        buffered = {e.partition: e.metadata for e in result.asset_materializations_for_node("buffered_signals")}
        grouped = {e.partition: e.metadata for e in result.asset_materializations_for_node("report_assignments")}
        for batch in three_batches:
            signals = [r for r in in_range["signals"] if r["batch_key"] == batch]
            assert len(signals) == 2 and buffered[batch]["accepted"].value == 2
            assert buffered[batch]["raw_batch_file"].value == inbox.raw_batch_key(batch)
            assert grouped[batch]["signals_assigned"].value == len(
                [r for r in in_range["report_assignments"] if r["batch_key"] == batch]
            )
        assert inbox.unfinished_batches(object_store) == []

        # The same batches again, one run each and in key order: every table is the range run's.
        for batch in three_batches:
            assert job.execute_in_process(partition_key=batch, instance=instance).success
        assert snapshot() == in_range


def block_grouped_marker(store, batch: str) -> None:
    """The store refuses one object write: the grouped marker of `batch` (a directory holds its name)."""
    (store.root / inbox.stage_marker_key(batch, inbox.GROUPED)).mkdir(parents=True)


def unblock_grouped_marker(store, batch: str) -> None:
    (store.root / inbox.stage_marker_key(batch, inbox.GROUPED)).rmdir()


def process(capsys) -> tuple[int, dict, str]:
    code = main(["process"])
    out, err = capsys.readouterr()
    return code, json.loads(out.strip().splitlines()[-1]), err


def batch_runs_in_order(instance) -> list[dg.DagsterRun]:
    records = instance.get_run_records(dg.RunsFilter(job_name="signal_batch_job"))
    return [r.dagster_run for r in sorted(records, key=lambda r: r.create_timestamp)]


def grouped_by_run(store, batch: str) -> str:
    return json.loads(store.get(inbox.stage_marker_key(batch, inbox.GROUPED)))["run_id"]


def test_a_batch_failing_inside_a_range_keeps_the_earlier_ones_and_the_later_ones_follow_in_order(
    capsys, object_store, three_batches
):
    first, bad, last = three_batches
    block_grouped_marker(object_store, bad)
    code, summary, err = process(capsys)
    assert code == 1 and summary["batches"] == 1
    home = ensure_dagster_home(load_settings())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [range_run, recording] = batch_runs_in_order(instance)
        recorded = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("report_assignments"), asset_partitions=[first]), limit=5
        ).records
    assert range_run.status == dg.DagsterRunStatus.FAILURE
    # The failed step recorded nothing; a run recorded the batch it grouped, which the UI showed failed.
    assert (recording.tags["dagster/run_key"], recording.status) == (f"{first}-recorded", dg.DagsterRunStatus.SUCCESS)
    assert [r.run_id for r in recorded] == [recording.run_id]
    assert f"batch(es) {first}…{first}: done by a failed run, unrecorded in Dagster: recorded" in err
    assert range_run.tags[RANGE_START_TAG] == first and range_run.tags[RANGE_END_TAG] == last
    assert {b: range_run.tags[batch_attempt_tag(b)] for b in three_batches} == {b: b for b in three_batches}
    # the batch before the bad one was grouped by the range run and stays finished
    assert inbox.unfinished_batches(object_store) == [bad, last]
    assert grouped_by_run(object_store, first) == range_run.run_id

    # The store accepts the write again: the two unfinished batches are retried, each alone, in key order.
    unblock_grouped_marker(object_store, bad)
    code, summary, err = process(capsys)
    assert code == 0 and summary["batches"] == 2 and summary["unfinished"] == []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        retries = batch_runs_in_order(instance)[2:]
    assert [(r.tags["dagster/partition"], r.tags["dagster/run_key"]) for r in retries] == [
        (bad, f"{bad}-retry1"),
        (last, f"{last}-retry1"),
    ]
    assert [grouped_by_run(object_store, b) for b in (bad, last)] == [r.run_id for r in retries]


def test_a_poison_batch_inside_a_range_is_parked_alone_and_the_later_batch_is_not(capsys, object_store, three_batches):
    """Every run that covered a batch without finishing it is a failed attempt of it; the bad batch,
    retried alone, runs out of attempts and is parked; the later one, retried alone once the bad one
    is parked, is grouped after it (its one failed attempt, in the range, does not park it)."""
    first, bad, last = three_batches
    block_grouped_marker(object_store, bad)
    codes = [process(capsys)[0] for _ in range(4)]
    assert codes == [1, 1, 1, 1]  # the last one finishes `last` but names the parked batch
    assert inbox.unfinished_batches(object_store) == []
    assert inbox.unfinished_batches(object_store, include_parked=True) == [bad]
    parked = json.loads(object_store.get(inbox.parked_key(bad)))
    assert "3 attempt(s) failed" in parked["reason"]
    home = ensure_dagster_home(load_settings())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        keys = {b: sorted(a.run_key for a in batch_attempts(instance, "signal_batch_job", b)) for b in three_batches}
        ordered = sorted(
            instance.get_run_records(dg.RunsFilter(job_name="signal_batch_job")), key=lambda r: r.create_timestamp
        )
    assert keys == {
        first: [first],  # the range run finished it
        bad: [bad, f"{bad}-retry1", f"{bad}-retry2"],
        last: [last, f"{last}-retry1"],
    }
    assert [r.dagster_run.run_id for r in ordered].index(grouped_by_run(object_store, last)) == len(ordered) - 1


def test_attempts_are_counted_per_batch_across_single_and_range_runs(object_store, team, tmp_path):
    emit_texts(object_store, CARD_DECLINED)
    batches = inbox.claim_all(object_store, 1)
    with shipped_instance(tmp_path) as instance:
        work = batch_work(instance, object_store, 3, 0)
        [request] = work.run_requests((), max_batches_per_run=20)
        assert request.partition_key is None and request.tags[RANGE_START_TAG] == batches[0]
        assert request.run_key == f"{batches[0]}..{batches[-1]}"
        # a failed range run: one failed attempt of each of its batches
        tags = {**request.tags, "dagster/run_key": request.run_key}
        run = create_run_for_test(instance, job_name="signal_batch_job", status=dg.DagsterRunStatus.STARTED, tags=tags)
        instance.report_run_failed(run, "the worker died")
        instance.add_run_tags(run.run_id, {"dagster/will_retry": "false"})  # Dagster's own retries are spent
        failed_run(instance, batches[1], f"{batches[1]}-retry1")  # and a single run of the middle one failed too
        work = batch_work(instance, object_store, 3, 0)
        assert work.to_run == [
            (batches[0], f"{batches[0]}-retry1"),
            (batches[1], f"{batches[1]}-retry2"),
            (
                batches[2],
                f"{batches[2]}-retry1",
            ),
        ]
        # every batch with a failed attempt runs alone, under its own partition and attempt key
        assert [(r.partition_key, r.run_key) for r in work.run_requests((), 20)] == work.to_run
        assert [len(batch_attempts(instance, "signal_batch_job", b)) for b in batches] == [1, 2, 1]


def test_ranges_follow_the_partition_set_and_the_size_limit(object_store, team, tmp_path):
    """A range holds exactly its batches: it never spans a batch of the partition set that is not to
    run (finished, parked or in flight), and holds at most `max_batches_per_run` batches."""
    emit_texts(object_store, CARD_DECLINED + PASSWORD_RESET)
    batches = inbox.claim_all(object_store, 1)
    inbox.park_batch(object_store, batches[2], "test", 3)
    with shipped_instance(tmp_path) as instance:
        work = batch_work(instance, object_store, 3, 0)
        requests = work.run_requests(batches, max_batches_per_run=2)
    spans = [
        (r.partition_key,) * 2 if r.partition_key else (r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG])
        for r in requests
    ]
    assert spans == [(batches[0], batches[1]), (batches[3], batches[4]), (batches[5], batches[5])]


def test_the_sensor_requests_one_range_run_for_its_open_batches(object_store, team, tmp_path):
    emit_texts(object_store, CARD_DECLINED + PASSWORD_RESET)
    sensor = build_signal_inbox_sensor(max_signals_per_batch=2, max_open_batches=3, max_batches_per_run=20)
    resources = {"object_store": ObjectStoreResource(root=str(object_store.root))}
    with shipped_instance(tmp_path) as instance:
        result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
    [request] = result.run_requests
    batches = list(result.dynamic_partitions_requests[0].partition_keys)
    assert len(batches) == 3
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (batches[0], batches[-1])
    assert {b: request.tags[batch_attempt_tag(b)] for b in batches} == {b: b for b in batches}


def vector_snapshots() -> list[tuple[str, str]]:
    settings = load_settings()
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        rows = db.query("SELECT report_id, batch_key FROM report_vector_snapshots ORDER BY report_id, batch_key")
    return [(r["report_id"], r["batch_key"]) for r in rows]


def test_a_grouping_run_prunes_the_snapshots_no_partition_left_reads(object_store, three_batches, monkeypatch):
    """With the first two batches' partitions retired, the third batch's run deletes the report snapshots
    superseded before it (every report read is folded here); grouping batch 2 again afterwards (its
    partition re-added, as `signals regroup` does) decides what it decided, from the deltas."""
    from signals_assets.grouping import store as grouping_store

    monkeypatch.setattr(grouping_store, "FOLD_PARTS", 0)
    job = defs().resolve_job_def("signal_batch_job")
    first, second, third = three_batches
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SIGNAL_BATCHES, three_batches)
        for batch in (first, second):
            assert job.execute_in_process(partition_key=batch, instance=instance).success
        [(card_report, at_first)] = vector_snapshots()  # batch 2 read the card report of batch 1
        assert at_first == first
        for retired in (first, second):
            instance.delete_dynamic_partition(SIGNAL_BATCHES, retired)
        assert job.execute_in_process(partition_key=third, instance=instance).success
        # batch 3 folded both reports at batch 2; the card report's snapshot at batch 1 is gone
        folded = vector_snapshots()
        assert [batch for _, batch in folded] == [second, second] and card_report in dict(folded)
        tables = snapshot()
        instance.add_dynamic_partitions(SIGNAL_BATCHES, [second])
        assert job.execute_in_process(partition_key=second, instance=instance).success
        assert snapshot() == tables
