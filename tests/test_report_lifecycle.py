"""The report judgement drives the lifecycle, end to end through the pipeline's jobs: actionable →
researched and ready; needs input → pending_input without research; not actionable → potential with
its weight reset, promoted again by later signals; unsafe → failed with the reason, no research."""

import dagster as dg
import pytest

from signals_assets.definitions import defs
from signals_assets.ingestion import inbox
from signals_assets.reports.promotions import pending_promotions
from signals_assets.settings import load_settings
from signals_assets.storage.clickhouse import open_chdb
from tests.openai_protocol_server import OpenAIProtocolServer

from conftest import CARD_DECLINED, emit_texts
from test_openai_pipeline import keyword_model
from test_pipeline import run_batch, run_report

DARK_MODE = [
    "Please add a dark mode to the dashboard.",
    "Could you add a dark mode to the dashboard?",
    "Please add dark mode to the dashboard, it would be great.",
]
THANKS = [
    "Thank you, your support team was wonderful!",
    "Thanks, your support team was wonderful and kind!",
    "Thank you so much, your support team was wonderful.",
    "Thanks again, your support team was wonderful!",
]


def query(sql: str, params=None) -> list[dict]:
    settings = load_settings()
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        return db.query(sql, params)


def next_batch(store, texts, start, last=None):
    emit_texts(store, texts, start=start)
    claim = inbox.claim_pending(store, 100, last)
    return claim.new_batches[0]


def report_of(text: str) -> str:
    return query("SELECT report_id FROM report_signals WHERE description = {text}", {"text": text})[0]["report_id"]


def test_judgements_move_reports_through_the_lifecycle(object_store, team):
    definitions = defs()
    with dg.instance_for_test() as instance:
        first = next_batch(object_store, CARD_DECLINED + DARK_MODE + THANKS[:2], 0)
        instance.add_dynamic_partitions("signal_batches", [first])
        promotions = run_batch(instance, definitions, first)
        assert len(promotions) == 3
        for promotion in promotions:
            run_report(instance, definitions, promotion["report_id"])
        card, dark, thanks = report_of(CARD_DECLINED[0]), report_of(DARK_MODE[0]), report_of(THANKS[0])
        reports = {r["report_id"]: r for r in query("SELECT * FROM reports")}
        assert {r: reports[r]["status"] for r in (card, dark, thanks)} == {
            card: "ready",
            dark: "pending_input",
            thanks: "potential",
        }
        assert reports[card]["actionability"] == "immediately_actionable"
        judged = {r["report_id"]: r for r in query("SELECT * FROM report_summaries")}
        assert (judged[card]["priority"], judged[card]["priority_reason"]) == ("P1", "mentions 'declined'")
        assert "ask for a change" in reports[dark]["actionability_reason"]
        # the weight is reset: the two thank-you signals no longer count, their count does
        assert (reports[thanks]["signal_count"], reports[thanks]["total_weight"]) == (2, 0.0)
        assert reports[thanks]["weight_after_batch"] == first
        researched = {r["report_id"] for r in query("SELECT report_id FROM research_results")}
        assert researched == {card}  # research never started for pending_input or potential reports
        events = query(
            "SELECT report_id, event, status, detail FROM report_events WHERE stage = 'summary' ORDER BY report_id"
        )
        assert {(e["report_id"], e["event"], e["status"]) for e in events} == {
            (dark, "needs_input", "pending_input"),
            (thanks, "not_actionable", "potential"),
        }

        # one more thank-you: weight 0.5 since the reset, not promoted; a second one promotes it again
        second = next_batch(object_store, THANKS[2:3], 20, first)
        instance.add_dynamic_partitions("signal_batches", [second])
        assert run_batch(instance, definitions, second) == []
        third = next_batch(object_store, THANKS[3:], 30, second)
        instance.add_dynamic_partitions("signal_batches", [third])
        promotions = run_batch(instance, definitions, third)
        assert promotions == [{"report_id": thanks, "team_id": 1, "round": 2}]
        assert [(p["report_id"], p["round"]) for p in pending_promotions(object_store)] == [(thanks, 2)]
        run_report(instance, definitions, thanks)
        # a re-run of the same round judges afresh and replaces its own decision
        run_report(instance, definitions, thanks)

    [again] = query("SELECT * FROM reports WHERE report_id = {r}", {"r": thanks})
    assert (again["status"], again["signal_count"], again["total_weight"]) == ("potential", 4, 0.0)
    assert (again["research_rounds"], again["weight_after_batch"]) == (2, third)
    decisions = query(
        "SELECT research_round, event FROM report_events WHERE report_id = {r} AND stage = 'summary' "
        "ORDER BY research_round",
        {"r": thanks},
    )
    assert decisions == [
        {"research_round": 1, "event": "not_actionable"},
        {"research_round": 2, "event": "not_actionable"},
    ]


def unsafe_report_model(body: dict):
    """The grouping stand-in, plus safety verdicts: every signal passes alone, but the report-level judge
    finds the declined-card report unsafe."""
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    if "all the signals of one report" in system and "declined" in user:
        return {"safe": False, "kind": "instruction_override", "signal": 1, "quote": "declined", "reason": "scripted"}
    return keyword_model(body)


@pytest.fixture
def llm_server(signals_home, monkeypatch):
    with OpenAIProtocolServer(chat_default=unsafe_report_model) as server:
        monkeypatch.setenv("SIGNALS_LLM_PROVIDER", "openai")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        yield server


def test_an_unsafe_report_fails_with_the_reason_and_is_not_researched(object_store, team, llm_server):
    definitions = defs()
    with dg.instance_for_test() as instance:
        batch = next_batch(object_store, CARD_DECLINED, 0)
        instance.add_dynamic_partitions("signal_batches", [batch])
        [promotion] = run_batch(instance, definitions, batch)
        result = run_report(instance, definitions, promotion["report_id"])
        metadata = result.asset_materializations_for_node("report_summaries")[0].metadata
    assert metadata["lifecycle"].value.startswith("failed: report-level safety judge: instruction_override")
    [report] = query("SELECT * FROM reports")
    assert report["status"] == "failed" and report["error"] == (
        "report-level safety judge: instruction_override: declined"
    )
    assert (report["safety"], report["safety_kind"], report["safety_quote"]) == (
        "unsafe",
        "instruction_override",
        "declined",
    )
    assert query("SELECT * FROM research_results") == []
    assert query("SELECT * FROM report_events WHERE stage = 'research'") == []
    assert not any("inbox entry" in r.text() for r in llm_server.requests())  # no summary prompt for it


CARD_MORE = [
    "My card keeps getting declined when I pay at checkout.",
    "Checkout declines my card payment every time I try.",
]


def one_problem_in_two_reports(object_store, instance, definitions, monkeypatch) -> tuple[str, str, str]:
    """Batch 1 (4 declined-card signals) split on purpose into two promoted reports of two signals each:
    the batch key and the older and younger report. The grouping is real again afterwards."""
    from signals_assets.grouping import consolidation, offline_matching
    from signals_assets.grouping.engine import MatchDecision

    monkeypatch.setattr(
        offline_matching, "decide", lambda vector, reports, params, scale: MatchDecision(None, reason="split")
    )
    with monkeypatch.context() as pairs:
        pairs.setattr(consolidation, "cluster_pool", lambda vectors, params: [i // 2 for i in range(len(vectors))])
        first = next_batch(object_store, CARD_DECLINED + CARD_MORE[:1], 0)
        instance.add_dynamic_partitions("signal_batches", [first])
        promotions = run_batch(instance, definitions, first)
    # in the order of their first signals (emitted together, the batch orders ties by signal id)
    older, younger = [
        r["report_id"]
        for r in query("SELECT report_id FROM current_assignments GROUP BY report_id ORDER BY min(first_position)")
    ]
    assert {p["report_id"] for p in promotions} == {older, younger}
    return first, older, younger


def test_consolidation_reaches_researched_reports(object_store, team, monkeypatch):
    """One problem researched as two ready reports; batch 2 brings one more of its signals (each new
    signal starts its own report one-pass). The consolidation merges the two into the older, moves
    the open signal in, and the survivor is judged and researched again; a re-run of batch 2 changes
    nothing."""
    from signals_assets.cli.read_models import list_reports

    definitions = defs()
    with dg.instance_for_test() as instance:
        first, older, younger = one_problem_in_two_reports(object_store, instance, definitions, monkeypatch)
        for report in (older, younger):
            run_report(instance, definitions, report)
        statuses = {r["report_id"]: r["status"] for r in query("SELECT report_id, status FROM reports")}
        assert statuses == {older: "ready", younger: "ready"}

        second = next_batch(object_store, CARD_MORE[1:], 10, first)
        instance.add_dynamic_partitions("signal_batches", [second])
        promotions = run_batch(instance, definitions, second)
        assert promotions == [{"report_id": older, "team_id": 1, "round": 2}]

        def grouping_facts():
            assignments = query("SELECT signal_id, report_id, deleted FROM current_assignments ORDER BY signal_id")
            events = query(
                "SELECT report_id, event, status, detail, research_round FROM report_events "
                "WHERE source = {batch} ORDER BY seq",
                {"batch": second},
            )
            return assignments, events

        assignments, events = grouping_facts()
        assert len(assignments) == 5 and {a["report_id"] for a in assignments} == {older}  # nothing lost, once each
        assert [(e["report_id"], e["event"], e["status"], e["detail"]) for e in events] == [
            (older, "consolidated", "ready", f"3 signals moved in, absorbed {younger}"),
            (older, "promoted", "candidate", "5 signals, weight 2.5"),
            (younger, "merged_into", "suppressed", f"merged into {older}"),
        ]
        assert run_batch(instance, definitions, second) == promotions  # a re-run writes the same facts
        assert grouping_facts() == (assignments, events)

        run_report(instance, definitions, older)

    reports = {r["id"]: r for r in list_reports(load_settings(), 1)["reports"]}
    assert (reports[older]["status"], reports[older]["signal_count"]) == ("ready", 5)
    assert (reports[younger]["status"], reports[younger]["signal_count"]) == ("suppressed", 0)
    assert (reports[younger]["merged_into"], reports[older]["merged_into"]) == (older, "")
    judged = {r["report_id"]: r["signal_count"] for r in query("SELECT report_id, signal_count FROM report_summaries")}
    assert judged[older] == 5  # re-judged on the merged signals
    rounds = query(
        "SELECT research_round FROM research_results WHERE report_id = {r} ORDER BY research_round", {"r": older}
    )
    assert [r["research_round"] for r in rounds] == [1, 2]


def test_consolidation_leaves_a_report_with_research_in_flight_alone(object_store, team, monkeypatch):
    """As above, but the younger report's research has started when batch 2 is grouped: none of its
    signals moves, it absorbs nothing and gets no event; the older, ready report takes the new signal."""
    from signals_assets.research.store import ResearchRound, record_started

    definitions = defs()
    with dg.instance_for_test() as instance:
        first, older, younger = one_problem_in_two_reports(object_store, instance, definitions, monkeypatch)
        run_report(instance, definitions, older)
        settings = load_settings()
        with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
            record_started(db, [ResearchRound(1, younger, 1, "run-in-flight", "subprocess", 5)])
        members = query(
            "SELECT signal_id FROM current_assignments WHERE report_id = {r} ORDER BY signal_id", {"r": younger}
        )

        second = next_batch(object_store, CARD_MORE[1:], 10, first)
        instance.add_dynamic_partitions("signal_batches", [second])
        run_batch(instance, definitions, second)

    after = query("SELECT signal_id FROM current_assignments WHERE report_id = {r} ORDER BY signal_id", {"r": younger})
    assert len(members) == 2 and after == members
    events = query("SELECT report_id, event FROM report_events WHERE source = {batch}", {"batch": second})
    assert younger not in {e["report_id"] for e in events}
    assert (older, "consolidated") in {(e["report_id"], e["event"]) for e in events}
    [status] = query("SELECT status FROM reports WHERE report_id = {r}", {"r": younger})
    assert status == {"status": "in_progress"}


def test_a_dead_runs_round_is_researched_again_after_a_batch_retitled_the_report(object_store, team):
    """A kill during research leaves the round `in_progress`; a later batch whose model retitles the report
    writes a grouping event that carries the status it found, `in_progress`, after the dead run's. Before,
    that event kept the report `in_progress` once the re-run cleared the dead run's events: the re-run skipped
    it ("report is in_progress"), dropped its promotion, and it stayed so for good. Now it is researched."""
    from datetime import datetime, timezone

    from signals_assets.research.store import ResearchRound, record_started

    definitions = defs()
    with dg.instance_for_test() as instance:
        first = next_batch(object_store, CARD_DECLINED, 0)
        instance.add_dynamic_partitions("signal_batches", [first])
        [promotion] = run_batch(instance, definitions, first)
        report = promotion["report_id"]
        settings = load_settings()
        with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
            record_started(db, [ResearchRound(1, report, 1, "a-killed-run", "subprocess", 5)])
            retitled = {
                "team_id": 1,
                "report_id": report,
                "source": "20991231T000000000000Z",
                "stage": "grouping",
                "seq": 0,
                "event": "retitled",
                "status": "in_progress",
                "title": "Card payments declined at checkout",
                "summary": "",
                "signals_at_run": 0,
                "research_round": 0,
                "detail": "",
                "at": datetime.now(timezone.utc),
                "weight_after_batch": "",
            }
            db.insert("report_events", [retitled])
        assert query("SELECT status FROM reports WHERE report_id = {r}", {"r": report}) == [{"status": "in_progress"}]

        run_report(instance, definitions, report)

    [state] = query("SELECT status, title FROM reports WHERE report_id = {r}", {"r": report})
    assert state["status"] == "ready"
    outcomes = query("SELECT status FROM research_results WHERE report_id = {r} AND research_round = 1", {"r": report})
    assert outcomes == [{"status": "ready"}]
    assert [p["report_id"] for p in pending_promotions(object_store)] == []
