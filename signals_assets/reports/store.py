"""The reports stage's reads and writes in the store: a report's live signals, its lifecycle state as
the summary and research steps see it, its summary, and the `report_summaries` row and summary event."""

from datetime import datetime, timezone

from signals_assets.reports import lifecycle
from signals_assets.reports.judgement import LifecycleDecision, ReportJudgement, ReportSignal, parse_extra
from signals_assets.storage.clickhouse import StoreSession
from signals_assets.storage.facts import current_assignments, latest_report_states

_TEAM_ASSIGNMENTS = current_assignments("team_id = {team}")

_REPORT_SIGNALS = f"""
SELECT a.signal_id AS signal_id, s.description AS description, s.source_product AS source_product,
       s.source_type AS source_type, s.source_id AS source_id, e.embedding AS embedding, a.weight AS weight,
       s.extra AS extra, a.first_batch_key AS batch_key
FROM ({_TEAM_ASSIGNMENTS}) AS a
INNER JOIN signals AS s ON s.signal_id = a.signal_id AND s.team_id = a.team_id
INNER JOIN signal_embeddings AS e ON e.signal_id = a.signal_id AND e.team_id = a.team_id AND e.model = {{model}}
WHERE a.report_id = {{report}} AND a.deleted = 0
ORDER BY a.first_position
"""

_RESEARCH_STATE = f"""
SELECT status, (SELECT count() FROM ({_TEAM_ASSIGNMENTS}) WHERE report_id = {{report}} AND deleted = 0) AS signal_count
FROM ({latest_report_states("team_id = {team} AND report_id = {report}")})
"""

# The report's state as its promotion left it: without this round's summary and research events, so
# re-running a round judges it afresh.
_EVENTS_BEFORE_ROUND = (
    "team_id = {team} AND report_id = {report} "
    "AND NOT (source = {report} AND stage IN ('summary', 'research') AND research_round = {round})"
)
_STATE_BEFORE_ROUND = f"SELECT status, signals_at_run FROM ({latest_report_states(_EVENTS_BEFORE_ROUND)})"


def report_signals(db: StoreSession, team: int, report: str, model: str) -> list[dict]:
    """The report's live signals with their `model` embeddings, in the order they joined it."""
    return db.query(_REPORT_SIGNALS, {"team": team, "report": report, "model": model})


def judged_signals(rows: list[dict]) -> list[ReportSignal]:
    """`report_signals` rows as the report judgement reads them."""
    return [
        ReportSignal(
            r["signal_id"],
            r["description"],
            r["source_product"],
            r["source_type"],
            float(r["weight"]),
            parse_extra(r["extra"]),
            r["embedding"],
        )
        for r in rows
    ]


def current_round(db: StoreSession, report: str) -> int:
    """The research round of the report's latest promotion."""
    return int(
        db.scalar(
            "SELECT max(research_round) FROM report_events WHERE report_id = {report} AND event = 'promoted'",
            {"report": report},
        )
        or 0
    )


def state_before_round(db: StoreSession, team: int, report: str, round_: int) -> dict:
    """{status, signals_at_run} of the report without this round's summary and research events."""
    rows = db.query(_STATE_BEFORE_ROUND, {"team": team, "report": report, "round": round_})
    return rows[0] if rows else {"status": "", "signals_at_run": 0}  # no events: no status


def research_state(db: StoreSession, team: int, report: str) -> dict:
    """{status, signal_count}: the report's latest status and its number of live signals."""
    rows = db.query(_RESEARCH_STATE, {"team": team, "report": report})
    return rows[0] if rows else {"status": "", "signal_count": 0}  # no events: no status


def report_summary(db: StoreSession, report: str) -> dict | None:
    """{title, summary} of the report's judgement, None before it is judged."""
    rows = db.query("SELECT title, summary FROM report_summaries WHERE report_id = {report}", {"report": report})
    return rows[0] if rows else None


def summary_row(team: int, report: str, judgement: ReportJudgement, signal_count: int, provider: str) -> dict:
    safety = judgement.safety
    return {
        "team_id": team,
        "report_id": report,
        "title": judgement.title,
        "summary": judgement.summary,
        "central_signal_ids": judgement.central_signal_ids,
        "signal_count": signal_count,
        "safety": "safe" if safety.safe else "unsafe",
        "safety_kind": safety.kind,
        "safety_quote": safety.display_quote,
        "actionability": judgement.actionability,
        "actionability_reason": judgement.actionability_reason,
        "priority": judgement.priority,
        "priority_reason": judgement.priority_reason,
        "provider": provider,
        "generated_at": datetime.now(timezone.utc),
    }


def summary_event(
    team: int,
    report: str,
    round_: int,
    judgement: ReportJudgement,
    decision: LifecycleDecision,
    before: dict,
    signals: list[dict],
) -> dict:
    """The lifecycle event of a judgement that moves the report on, from its state before the round
    (`state_before_round`) and its `report_signals`. A weight reset sets `weight_after_batch` to the
    report's last batch: only signals of later batches count toward its weight from then on (the
    reports view and the grouping)."""
    return {
        "team_id": team,
        "report_id": report,
        "source": report,
        "stage": "summary",
        "seq": 0,
        "event": decision.event,
        "status": decision.status,
        "title": judgement.title,
        "summary": judgement.summary,
        "signals_at_run": int(before["signals_at_run"]),
        "research_round": round_,
        "detail": decision.detail,
        "at": datetime.now(timezone.utc),
        "weight_after_batch": max(s["batch_key"] for s in signals) if decision.resets_weight else "",
    }


def write_summary(db: StoreSession, report: str, round_: int, row: dict, events: list[dict]) -> None:
    """Replace the report's summary row and this round's summary event (none when the judgement
    leaves the lifecycle as it is)."""
    db.replace_partition("report_summaries", "report_id = {report}", [row], {"report": report})
    db.replace_partition(
        "report_events",
        "source = {report} AND stage = 'summary' AND research_round = {round}",
        events,
        {"report": report, "round": round_},
    )


def write_summary_failure(db: StoreSession, team: int, report: str, round_: int, before: dict, reason: str) -> bool:
    """Replace this round's summary event by a `failed` one with the reason, when the report's status
    before the round (`state_before_round`) may move to failed; whether it was written."""
    try:
        lifecycle.check_transition(before["status"] or None, lifecycle.FAILED)
    except lifecycle.InvalidTransition:
        return False
    event = {
        "team_id": team,
        "report_id": report,
        "source": report,
        "stage": "summary",
        "seq": 0,
        "event": "failed",
        "status": lifecycle.FAILED,
        "title": "",
        "summary": "",
        "signals_at_run": int(before["signals_at_run"]),
        "research_round": round_,
        "detail": reason,
        "at": datetime.now(timezone.utc),
        "weight_after_batch": "",
    }
    db.replace_partition(
        "report_events",
        "source = {report} AND stage = 'summary' AND research_round = {round}",
        [event],
        {"report": report, "round": round_},
    )
    return True
