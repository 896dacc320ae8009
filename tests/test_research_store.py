"""The research stage's rows on the embedded store: a round's start, outcome and failure, a re-run of
the round, and the reconciler failing the rounds whose Dagster run ended without an outcome."""

from datetime import datetime, timedelta, timezone

import pytest

from signals_assets.reports import lifecycle, store as report_store
from signals_assets.research import store as research_store
from signals_assets.research.outcome import ResearchOutcome
from signals_assets.research.store import ResearchRound
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.sensors.research_reconciler import fail_abandoned_research
from signals_assets.storage.facts import latest_report_states

TEAM = 1
ROUND = 1
SUMMARY = {"title": "Card payments declined", "summary": "Cards fail at checkout."}


def event(report: str, minute: int, name: str, status: str) -> dict:
    return {
        "team_id": TEAM,
        "report_id": report,
        "source": "b1",
        "stage": "grouping",
        "seq": minute,
        "event": name,
        "status": status,
        "title": "",
        "summary": "",
        "signals_at_run": 0,
        "research_round": ROUND,
        "detail": "",
        "at": datetime.now(timezone.utc) - timedelta(minutes=10 - minute),
        "weight_after_batch": "",
    }


def promote(db, report: str) -> None:
    db.insert(
        "report_events",
        [event(report, 0, "created", lifecycle.POTENTIAL), event(report, 1, "promoted", lifecycle.CANDIDATE)],
    )


def states(db) -> dict[str, dict]:
    return {
        row["report_id"]: row for row in db.query(f"SELECT report_id, status, detail FROM ({latest_report_states()})")
    }


def research_round(report: str, run_id: str) -> ResearchRound:
    return ResearchRound(TEAM, report, ROUND, run_id, "subprocess", signals_at_run=3)


def ready_outcome() -> ResearchOutcome:
    return ResearchOutcome(
        status="ready",
        repository="shop",
        findings=[{"file": "billing/card_payments.py"}],
        repository_ranking=[{"name": "shop", "score": 2.5, "reason": "best file"}],
        confidence="high",
        reason="shop is the only candidate repository",
        sandbox="subprocess",
    )


@pytest.fixture
def db(tmp_path):
    with ClickHouseResource(path=str(tmp_path / "ch")).session() as session:
        yield session


def test_the_reconciler_fails_only_the_rounds_whose_run_ended(db):
    names = ("dead", "alive", "unknown", "done")
    for name in names:
        promote(db, f"1-{name}")
    research_store.record_started(db, [research_round(f"1-{name}", f"run-{name}") for name in names])
    _, *done = research_store.outcome_rows(research_round("1-done", "run-done"), ready_outcome(), "log", SUMMARY)
    research_store.record_rounds(db, [tuple(done)])
    run_status = {"run-dead": "FAILURE", "run-alive": "STARTED", "run-done": "SUCCESS"}.get  # run-unknown: None

    failed = fail_abandoned_research(db, run_status)

    assert failed == [research_round("1-dead", "run-dead")]
    by_report = states(db)
    assert {report: row["status"] for report, row in by_report.items()} == {
        "1-dead": "failed",
        "1-alive": "in_progress",
        "1-unknown": "in_progress",
        "1-done": "ready",
    }
    assert by_report["1-dead"]["detail"].startswith("research run run-dead ended (FAILURE) before recording an outcome")
    [result] = db.query("SELECT status, sandbox, dagster_run_id FROM research_results WHERE report_id = '1-dead'")
    assert result == {"status": "failed", "sandbox": "subprocess", "dagster_run_id": "run-dead"}
    assert fail_abandoned_research(db, run_status) == []  # nothing in progress is left for an ended run


def test_a_rerun_of_the_round_replaces_its_research_and_starts_from_the_promotion(db):
    promote(db, "1-card")
    first = research_round("1-card", "run-1")
    research_store.record_started(db, [first])
    status, *rows = research_store.outcome_rows(first, ready_outcome(), "log-1", SUMMARY)
    assert status == "ready"
    research_store.record_rounds(db, [tuple(rows)])
    [result] = db.query("SELECT * FROM research_results")
    assert (result["status"], result["repository"], result["confidence"]) == ("ready", "shop", "high")
    assert "priority" not in result and "actionability" not in result  # the report judgement's, not the agent's

    research_store.clear_round_events(db, {"1-card": ROUND})
    assert report_store.research_states(db, {"1-card": TEAM})["1-card"]["status"] == lifecycle.CANDIDATE
    assert report_store.states_before_round(db, {"1-card": ROUND})["1-card"]["status"] == lifecycle.CANDIDATE
    research_store.record_started(db, [research_round("1-card", "run-2")])

    assert db.query("SELECT status, dagster_run_id FROM research_results") == [
        {"status": "in_progress", "dagster_run_id": "run-2"}
    ]
    assert states(db)["1-card"]["status"] == lifecycle.IN_PROGRESS


def test_a_report_without_events_has_no_state(db):
    assert report_store.research_states(db, {"1-none": TEAM}) == {"1-none": {"status": "", "signal_count": 0}}
    assert report_store.states_before_round(db, {"1-none": ROUND}) == {"1-none": {"status": "", "signals_at_run": 0}}


def summary_rows(db, reports: list[str]) -> tuple[list[dict], list[dict]]:
    """A summary row and a `failed` summary event of each report, as a report run writes them."""
    before = report_store.states_before_round(db, report_store.current_rounds(db, reports))
    rows = [{"team_id": TEAM, "report_id": r, "title": f"title of {r}", "summary": "s"} for r in reports]
    events = [report_store.summary_failure_event(TEAM, r, ROUND, before[r], f"failed {r}") for r in reports]
    return rows, [e for e in events if e is not None]


def round_tables(db) -> dict[str, list[dict]]:
    return {
        "summaries": db.query("SELECT report_id, title FROM report_summaries ORDER BY report_id"),
        "events": db.query(
            "SELECT report_id, stage, event, detail FROM report_events WHERE stage != 'grouping' "
            "ORDER BY report_id, stage, seq"
        ),
        "results": db.query("SELECT report_id, status, dagster_run_id FROM research_results ORDER BY report_id"),
    }


def test_a_run_writes_each_reports_rows_once_and_a_rewrite_leaves_the_tables_identical(db):
    run_reports, other = ["1-card", "1-reset", "1-search"], "1-other"
    for report in [*run_reports, other]:
        promote(db, report)
    assert report_store.current_rounds(db, [*run_reports, "1-none"]) == {
        **dict.fromkeys(run_reports, ROUND),
        "1-none": 0,
    }
    report_store.write_summaries(db, {other: ROUND}, *summary_rows(db, [other]))
    research_store.record_started(db, [research_round(other, "run-other")])

    def run_once() -> dict[str, list[dict]]:
        rounds = dict.fromkeys(run_reports, ROUND)
        report_store.write_summaries(db, rounds, *summary_rows(db, run_reports))
        research_store.clear_round_events(db, rounds)
        research_store.record_started(db, [research_round(r, "run-1") for r in run_reports])
        return round_tables(db)

    first = run_once()
    assert first["summaries"] == [{"report_id": r, "title": f"title of {r}"} for r in sorted([*run_reports, other])]
    assert [(e["report_id"], e["stage"], e["event"]) for e in first["events"]] == [
        (r, stage, name)
        for r in sorted([*run_reports, other])
        for stage, name in (("research", "research_started"), ("summary", "failed"))
    ]
    assert [(r["report_id"], r["dagster_run_id"]) for r in first["results"]] == sorted(
        [(r, "run-1") for r in run_reports] + [(other, "run-other")]
    )
    assert run_once() == first  # the same run again: each report's rows replaced, never doubled
    states = report_store.research_states(db, {r: TEAM for r in run_reports})
    assert {r: s["status"] for r, s in states.items()} == dict.fromkeys(run_reports, lifecycle.IN_PROGRESS)


@pytest.mark.parametrize("cursor", ["garbage", "nan", "inf", "1e30", "4102444800.0"])
def test_the_reconciler_sensor_reads_a_cursor_set_by_hand_as_a_fresh_one(cursor):
    """A cursor that is no time up to now (text, nan, past the last representable time, or after
    now) must not stop the reconciliation of every later failed report run: it reads as none."""
    import dagster as dg
    from dagster._core.test_utils import create_run_for_test

    from signals_assets.sensors.research_reconciler import research_reconciler

    with dg.instance_for_test() as instance:
        run = create_run_for_test(instance, job_name="report_job", status=dg.DagsterRunStatus.STARTED)
        instance.report_run_failed(run, "run worker process is gone")
        with dg.build_sensor_context(instance=instance, cursor=cursor) as context:
            request = research_reconciler(context)
        assert isinstance(request, dg.RunRequest) and request.run_key == f"after-{run.run_id}"


class Killed(Exception):
    """The process died here: no later statement of the write runs."""


def write_until_killed(db, writes: int, write, *args) -> None:
    """Call `write(db, *args)` with its process killed once `writes` writes have reached the store (the
    store's own hook before each write, the `write` fault stage): the later ones never do."""
    from signals_assets.storage import clickhouse

    done = []

    def kill_at_the_next_write(stage: str) -> None:
        if stage == "write":
            if len(done) == writes:
                raise Killed(f"before write {writes + 1}")
            done.append(stage)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clickhouse, "pause_point", kill_at_the_next_write)
        try:
            write(db, *args)
        except Killed:
            pass


@pytest.mark.parametrize("outcome", ["ready", "failed"])
def test_a_kill_between_the_statements_of_a_rounds_outcome_leaves_it_finished_or_open_for_a_rerun(db, outcome):
    """The outcome row in research_results is what tells a retry the round is done (`rounds_taken`), so
    a kill after any statement of the outcome's write must leave the report either showing that
    outcome or with its round open to research again: never `in_progress` with the round done."""
    for writes in range(4):  # killed after 0, 1 or 2 of its 3 write statements, or not at all
        report = f"1-kill{writes}"
        promote(db, report)
        dead = research_round(report, "run-killed")
        research_store.record_started(db, [dead])
        if outcome == "ready":
            _, *rows = research_store.outcome_rows(dead, ready_outcome(), "log", SUMMARY)
        else:
            rows = research_store.failure_rows(dead, "the agent crashed")
        write_until_killed(db, writes, research_store.record_rounds, [tuple(rows)])

        taken = research_store.rounds_taken(db, {report: ROUND}, "run-retry", lambda run_id: False, attempt=True)
        if report in taken:
            assert taken[report].done, (writes, taken)
            assert states(db)[report]["status"] == outcome, writes
        else:  # the retry clears the round and researches it again
            research_store.clear_round_events(db, {report: ROUND})
            assert states(db)[report]["status"] == lifecycle.CANDIDATE, writes


def test_a_kill_between_the_statements_of_a_rounds_start_leaves_no_report_in_progress_the_reconciler_cannot_fail(db):
    """A manual re-run of a researched round (no promotion left to retry it) killed after any statement
    of its start: a report shown `in_progress` has the row naming the dead run, so the reconciler fails it."""
    for writes in range(4):  # killed after 0, 1 or 2 of its 3 write statements, or not at all
        report = f"1-rerun{writes}"
        promote(db, report)
        earlier = research_round(report, "run-earlier")
        research_store.record_started(db, [earlier])
        research_store.record_rounds(
            db, [tuple(research_store.outcome_rows(earlier, ready_outcome(), "log", SUMMARY)[1:])]
        )
        research_store.clear_round_events(db, {report: ROUND})  # the re-run replaces the round
        write_until_killed(db, writes, research_store.record_started, [research_round(report, "run-killed")])

        fail_abandoned_research(db, {"run-earlier": "SUCCESS", "run-killed": "FAILURE"}.get)
        assert states(db)[report]["status"] in (lifecycle.CANDIDATE, lifecycle.FAILED), writes
