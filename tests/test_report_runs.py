"""Report work in few runs: one run summarises and researches a partition range of reports, each
report with its own materialisation, and one report's failure leaves the others alone."""

import sys

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from signals_assets.assets.reports import ROUNDS_TAG
from signals_assets.cli.commands import execute_request, failed_reports
from signals_assets.ingestion import inbox
from signals_assets.jobs import TEAM_TAG
from signals_assets.reports.promotions import (
    pending_promotions,
    promotion_key,
    record_promotions,
    report_run_groups,
)
from signals_assets.research import store as research_store
from signals_assets.research.pool import run_bounded
from signals_assets.research.store import ResearchRound
from signals_assets.sensors.report_promotion import promotion_work
from signals_assets.sensors.research_reconciler import fail_abandoned_research
from signals_assets.settings import load_settings
from signals_assets.storage.clickhouse import open_chdb
from signals_assets.storage.facts import latest_report_states

from conftest import CARD_DECLINED, PASSWORD_RESET, emit_texts
from sandbox_runs import definitions_with_sandbox

SEARCH_BROKEN = [
    "Product search returns no results when I misspell a product name.",
    "Product search shows no results when the product name is misspelled.",
    "A misspelled product name gives no results in product search.",
]
# Columns that record when or by which run a row was written: a re-run changes only these.
RUN_COLUMNS = {"at", "generated_at", "finished_at", "dagster_run_id", "log_key"}


def failing_interpreter(tmp_path, report_id: str) -> str:
    """The real interpreter, except that the agent of `report_id` exits 3 before doing anything (the
    subprocess sandbox starts it in its work folder, beside its Pipes context file)."""
    path = tmp_path / "python_failing_one_report"
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "context = json.load(open('context.json'))\n"
        f"if context['extras']['report']['report_id'] == {report_id!r}:\n"
        "    sys.exit(3)\n"
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
    )
    path.chmod(0o755)
    return str(path)


def store_tables() -> dict:
    settings = load_settings()
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        tables = {
            "report_summaries": db.query("SELECT * FROM report_summaries ORDER BY report_id"),
            "research_results": db.query("SELECT * FROM research_results ORDER BY report_id, research_round"),
            "report_events": db.query("SELECT * FROM report_events ORDER BY report_id, stage, research_round, seq"),
        }
        statuses = {r["report_id"]: r["status"] for r in db.query(f"SELECT * FROM ({latest_report_states()})")}
    return {
        name: [{k: v for k, v in row.items() if k not in RUN_COLUMNS} for row in rows] for name, rows in tables.items()
    } | {"statuses": statuses}


@pytest.fixture
def promoted(object_store, team):
    """Three promoted reports of team 1 (one batch grouped), on a fresh instance."""
    emit_texts(object_store, CARD_DECLINED + PASSWORD_RESET + SEARCH_BROKEN)
    [batch] = inbox.claim_pending(object_store, 100, None).new_batches
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("signal_batches", [batch])
        assert (
            definitions_with_sandbox()
            .resolve_job_def("signal_batch_job")
            .execute_in_process(partition_key=batch, instance=instance)
            .success
        )
        yield instance


def research_runs() -> dict[str, str]:
    """{report: the run its research_results row names}."""
    settings = load_settings()
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        return {r["report_id"]: r["dagster_run_id"] for r in db.query("SELECT * FROM research_results")}


def report_titled(tables: dict, word: str) -> str:
    return next(s["report_id"] for s in tables["report_summaries"] if word in s["title"].lower())


def test_one_run_materialises_each_report_and_a_failed_research_fails_only_its_report(promoted, object_store, tmp_path):
    instance = promoted
    work = promotion_work(instance, object_store, 3, 0)
    assert len(work.to_run) == 3
    [request] = work.run_requests(instance.get_dynamic_partitions("reports"), reports_per_run=50)
    instance.add_dynamic_partitions("reports", list(work.partitions_request().partition_keys))
    assert request.tags[TEAM_TAG] == "1" and sorted(request.tags[ROUNDS_TAG].split()) == sorted(
        k for _, k in work.to_run
    )
    keys = sorted(p["report_id"] for p, _ in work.to_run)

    # First judge every report to learn which one is about password resets; research fails for it.
    summaries_only = definitions_with_sandbox().resolve_job_def("report_job")
    summaries_only.execute_in_process(
        instance=instance, tags=request.tags, asset_selection=[dg.AssetKey("report_summaries")]
    )
    failing = report_titled(store_tables(), "reset")
    job = definitions_with_sandbox(python_executable=failing_interpreter(tmp_path, failing), concurrency=2)
    result = execute_request(job.resolve_job_def("report_job"), request, instance)
    assert result.success  # one report's failure does not fail the run
    # what `signals process` names as failed, and why
    assert list(failed_reports(result)) == [failing]
    assert failed_reports(result)[failing].startswith("research failed: research agent failed (subprocess)")

    research = {e.partition: e.metadata for e in result.asset_materializations_for_node("report_research")}
    summaries = {e.partition: e.metadata for e in result.asset_materializations_for_node("report_summaries")}
    assert sorted(research) == sorted(summaries) == keys
    assert len({summaries[k]["title"].value for k in keys}) == 3  # each report's own metadata
    assert research[failing]["status"].value == "failed"
    assert "research agent failed (subprocess)" in research[failing]["reason"].value
    assert "exited with code 3" in research[failing]["reason"].value
    others = [k for k in keys if k != failing]
    assert all(research[k]["status"].value == "ready" and research[k]["findings"].value > 0 for k in others)
    assert all(research[k]["reports_in_run"].value == 3 for k in keys)

    first = store_tables()
    assert first["statuses"] == {failing: "failed", **{k: "ready" for k in others}}
    [failed_row] = [r for r in first["research_results"] if r["report_id"] == failing]
    assert "exited with code 3" in failed_row["reason"]
    assert pending_promotions(object_store) == []  # every round has its outcome
    assert promotion_work(instance, object_store, 3, 0).to_run == []

    # The same request again (a second `signals process` decided on the rounds before this run ended):
    # each round has its outcome, so none is researched twice; identical tables, to the run ids.
    logs = object_store.list("research_logs/")
    results = research_runs()
    again = execute_request(job.resolve_job_def("report_job"), request, instance)
    assert again.success and store_tables() == first and research_runs() == results
    assert object_store.list("research_logs/") == logs
    skipped = {
        e.partition: e.metadata["skipped"].value for e in again.asset_materializations_for_node("report_research")
    }
    assert all("already has its outcome" in skipped[k] for k in keys), skipped

    # One report from the UI: a single-partition run still works and records only that report.
    single = definitions_with_sandbox().resolve_job_def("report_job")
    one = single.execute_in_process(partition_key=failing, instance=instance)
    assert [e.partition for e in one.asset_materializations_for_node("report_research")] == [failing]
    assert one.asset_materializations_for_node("report_research")[0].metadata["status"].value == "ready"
    assert store_tables()["statuses"][failing] == "ready"


def promotion(report: str, team: int = 1) -> dict:
    return {"report_id": report, "team_id": team, "round": 1, "promoted_at": 1.0}


def test_report_runs_are_per_team_contiguous_ranges_of_at_most_the_cap():
    existing = ["r1-a", "r1-b", "r2-c", "r1-d"]
    rounds = [(promotion(k, int(k[1])), f"{k}-round1") for k in ("r1-a", "r1-b", "r1-d", "r2-c", "r1-x", "r1-y")]
    rounds.append((promotion("r2-z", 2), "r2-z-round1"))
    groups = report_run_groups(rounds, existing, reports_per_run=50)
    # r1-d, then r1-x and r1-y appended after it (sorted, before r2-z): one range
    assert [[key for _, key in g] for g in groups] == [
        ["r1-a-round1", "r1-b-round1"],
        ["r1-d-round1", "r1-x-round1", "r1-y-round1"],
        ["r2-c-round1"],
        ["r2-z-round1"],
    ]
    capped = report_run_groups(rounds, existing, reports_per_run=2)
    assert [len(g) for g in capped] == [2, 2, 1, 1, 1]
    # two rounds of one report stay in one run and count once
    twice = [(promotion("r1-a"), "r1-a-round1"), ({**promotion("r1-a"), "round": 2}, "r1-a-round2")]
    assert [[k for _, k in g] for g in report_run_groups(twice, ["r1-a"], 1)] == [["r1-a-round1", "r1-a-round2"]]


def test_the_research_pool_bounds_concurrency_and_reports_each_error():
    import threading
    import time

    running, peak, lock = [0], [0], threading.Lock()

    def task(number):
        def run(cancelled):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.05)
            with lock:
                running[0] -= 1
            if number == 2:
                raise RuntimeError("boom")
            return number * 10

        return run

    results = {
        index: (value, error) for group in run_bounded([task(n) for n in range(6)], 2) for index, value, error in group
    }
    assert peak[0] == 2
    assert {i: v for i, (v, e) in results.items() if e is None} == {0: 0, 1: 10, 3: 30, 4: 40, 5: 50}
    assert str(results[2][1]) == "boom"
    with pytest.raises(ValueError, match="research concurrency must be at least 1"):
        list(run_bounded([task(0)], 0))


def test_the_pool_hands_back_together_what_finished_while_the_caller_was_busy():
    """The report run records each group in one store session: tasks that end while it records the
    previous group come back as one group, in index order."""
    import threading
    import time

    release = threading.Event()

    def first(cancelled: threading.Event):
        return "first"

    def later(number: int):
        def run(cancelled: threading.Event):
            release.wait(timeout=30)
            return number

        return run

    pool = run_bounded([first, later(1), later(2)], 3)
    assert next(pool) == [(0, "first", None)]
    release.set()
    time.sleep(0.3)  # the caller is busy (recording) while both finish
    assert next(pool) == [(1, 1, None), (2, 2, None)]
    assert list(pool) == []


def test_an_interrupted_pool_cancels_and_stops_its_running_tasks():
    """What a terminated run does: the interrupt reaches the thread reading the results."""
    import threading

    seen, stopped, running = [], [], threading.Event()

    def wait_for_cancel(cancelled: threading.Event):
        running.set()
        seen.append(cancelled.wait(timeout=30))

    def quick(cancelled: threading.Event):
        running.wait(timeout=30)  # returns once the other task runs
        return "quick"

    pool = run_bounded([quick, wait_for_cancel], 2, stop_all=lambda: stopped.append(True))
    assert next(pool) == [(0, "quick", None)]
    with pytest.raises(KeyboardInterrupt):
        pool.throw(KeyboardInterrupt())
    assert seen == [True] and stopped == [True]


def test_a_round_finished_between_listing_and_reading_is_left_out_not_an_error(object_store):
    """The promotion sensor lists the pending rounds while report runs finish them: a round whose
    object is deleted after the listing is done, and the rest are still returned."""
    record_promotions(
        object_store,
        "b1",
        [{"report_id": report_id, "team_id": 1, "round": 1} for report_id in ("r-a", "r-b", "r-c")],
    )
    listed = object_store.list

    def list_then_finish_one(prefix, limit=None):
        keys = listed(prefix, limit)
        object_store.delete(promotion_key("r-b", 1))  # what the report run of r-b does when done
        return keys

    object_store.list = list_then_finish_one
    assert [p["report_id"] for p in pending_promotions(object_store)] == ["r-a", "r-c"]


def test_a_report_partition_added_by_hand_for_no_report_is_skipped_saying_so(object_store):
    unknown = "r1-00000000000000ff"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("reports", [unknown])
        job = definitions_with_sandbox().resolve_job_def("report_job")
        result = job.execute_in_process(partition_key=unknown, instance=instance)
    assert result.success
    [summary] = result.asset_materializations_for_node("report_summaries")
    assert summary.metadata["skipped"].value.startswith(f"no report {unknown} in the store: ")
    [research] = result.asset_materializations_for_node("report_research")
    assert research.metadata["skipped"].value == f"no report {unknown} in the store"


def test_a_second_run_of_a_round_leaves_it_to_the_live_run_researching_it(promoted, object_store):
    """Two `signals process` (or one beside the daemon) can both run a round. The second used to
    clear the round's events, find the report a candidate again and research it too: two sandbox
    runs and two outcome events for one round. It now leaves the round to the live run, keeps its
    promotion (the other run finishes it), and a retry after that run died researches it."""
    instance = promoted
    work = promotion_work(instance, object_store, 3, 0)
    [request] = work.run_requests(instance.get_dynamic_partitions("reports"), reports_per_run=50)
    instance.add_dynamic_partitions("reports", list(work.partitions_request().partition_keys))
    job = definitions_with_sandbox().resolve_job_def("report_job")
    # Run A judged the reports and started researching one of them; its process still runs.
    assert job.execute_in_process(
        instance=instance, tags=request.tags, asset_selection=[dg.AssetKey("report_summaries")]
    ).success
    first = store_tables()
    held = report_titled(first, "reset")
    runner = create_run_for_test(instance, job_name="report_job", status=dg.DagsterRunStatus.STARTED, tags=request.tags)
    settings = load_settings()
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        research_store.record_started(db, [ResearchRound(1, held, 1, runner.run_id, "subprocess", 6)])

    second = execute_request(job, request, instance)
    assert second.success
    research = {e.partition: e.metadata for e in second.asset_materializations_for_node("report_research")}
    assert research[held]["skipped"].value == f"research round 1 is in progress in run {runner.run_id}"
    summaries = {e.partition: e.metadata for e in second.asset_materializations_for_node("report_summaries")}
    assert summaries[held]["skipped"].value == research[held]["skipped"].value  # not judged again either
    tables = store_tables()
    assert tables["statuses"][held] == "in_progress" and research_runs()[held] == runner.run_id
    assert [e["event"] for e in tables["report_events"] if e["report_id"] == held and e["stage"] == "research"] == [
        "research_started"
    ]
    assert not [key for key in object_store.list("research_logs/") if f"/{held}/" in key]
    assert [p["report_id"] for p in pending_promotions(object_store)] == [held]  # left for run A to finish

    # Run A died: the research reconciler fails the round, as for any research run that died.
    instance.report_run_failed(instance.get_run_by_id(runner.run_id), "its worker died")
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        [failed] = fail_abandoned_research(db, lambda run_id: instance.get_run_by_id(run_id).status.value)
    assert failed.report == held and store_tables()["statuses"][held] == "failed"
