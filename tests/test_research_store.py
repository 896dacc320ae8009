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
    for name in ("dead", "alive", "unknown", "done"):
        promote(db, f"1-{name}")
        research_store.record_started(db, research_round(f"1-{name}", f"run-{name}"))
    research_store.record_outcome(db, research_round("1-done", "run-done"), ready_outcome(), "log", SUMMARY)
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
    research_store.record_started(db, first)
    assert research_store.record_outcome(db, first, ready_outcome(), "log-1", SUMMARY) == "ready"
    [result] = db.query("SELECT * FROM research_results")
    assert (result["status"], result["repository"], result["confidence"]) == ("ready", "shop", "high")
    assert "priority" not in result and "actionability" not in result  # the report judgement's, not the agent's

    research_store.clear_round_events(db, "1-card", ROUND)
    assert report_store.research_state(db, TEAM, "1-card")["status"] == lifecycle.CANDIDATE
    assert report_store.state_before_round(db, TEAM, "1-card", ROUND)["status"] == lifecycle.CANDIDATE
    research_store.record_started(db, research_round("1-card", "run-2"))

    assert db.query("SELECT status, dagster_run_id FROM research_results") == [
        {"status": "in_progress", "dagster_run_id": "run-2"}
    ]
    assert states(db)["1-card"]["status"] == lifecycle.IN_PROGRESS


def test_a_report_without_events_has_no_state(db):
    assert report_store.research_state(db, TEAM, "1-none")["status"] == ""
    assert report_store.state_before_round(db, TEAM, "1-none", ROUND)["status"] == ""
