"""The reports stage's reads and writes in the store: a report's live signals, its lifecycle state as
the summary and research steps see it, its summary, and the `report_summaries` row and summary event."""

from datetime import datetime, timezone

from signals_assets.reports import lifecycle
from signals_assets.reports.judgement import LifecycleDecision, ReportJudgement, ReportSignal, parse_extra
from signals_assets.storage.clickhouse import StoreSession
from signals_assets.storage.facts import current_assignments, latest_report_states, signals_ever_in

# A run reads and writes all its reports in one statement per table: a `{rounds}` list of
# "report#round" keys names each report's current round in one condition.
ROUND_OF_REPORT = "concat(report_id, '#', toString(research_round)) IN {rounds}"
# The events the summary stage wrote about the reports in those rounds.
SUMMARY_EVENTS_OF_ROUNDS = f"source = report_id AND stage = 'summary' AND {ROUND_OF_REPORT}"
# The reports' signals and their rows of the other tables, read by signal id: the joins' right sides
# hold the reports' signals only, not the team's (three reports of a team of 1M signals: 1.2 s and
# 1.9 GB for the embeddings' join alone, read whole).
_EVER_IN_REPORTS = signals_ever_in("team_id IN {teams}")
_REPORTS_ASSIGNMENTS = current_assignments(f"team_id IN {{teams}} AND signal_id IN ({_EVER_IN_REPORTS})")
_REPORT_SIGNALS = f"""
SELECT a.report_id AS report_id, a.signal_id AS signal_id, s.description AS description,
       s.source_product AS source_product, s.source_type AS source_type, s.source_id AS source_id,
       e.embedding AS embedding, a.weight AS weight, s.extra AS extra, a.first_batch_key AS batch_key
FROM ({_REPORTS_ASSIGNMENTS}) AS a
INNER JOIN (
    SELECT team_id, signal_id, description, source_product, source_type, source_id, extra FROM signals
    WHERE team_id IN {{teams}} AND signal_id IN ({_EVER_IN_REPORTS})
) AS s ON s.signal_id = a.signal_id AND s.team_id = a.team_id
INNER JOIN (
    SELECT team_id, signal_id, embedding FROM signal_embeddings
    WHERE team_id IN {{teams}} AND model = {{model}} AND signal_id IN ({_EVER_IN_REPORTS})
) AS e ON e.signal_id = a.signal_id AND e.team_id = a.team_id
WHERE a.report_id IN {{reports}} AND a.deleted = 0
ORDER BY a.report_id, a.first_position
"""
_RESEARCH_STATES = f"""
SELECT s.report_id AS report_id, s.status AS status, c.signal_count AS signal_count
FROM ({latest_report_states("report_id IN {reports}")}) AS s
LEFT JOIN (
    SELECT report_id, count() AS signal_count FROM ({_REPORTS_ASSIGNMENTS})
    WHERE report_id IN {{reports}} AND deleted = 0 GROUP BY report_id
) AS c ON c.report_id = s.report_id
"""

# Each report's state as its promotion left it: without its current round's summary and research
# events, so re-running a round judges it afresh.
_EVENTS_BEFORE_ROUND = (
    f"report_id IN {{reports}} AND NOT (source = report_id AND stage IN ('summary', 'research') AND {ROUND_OF_REPORT})"
)
_STATES_BEFORE_ROUND = f"SELECT report_id, status, signals_at_run FROM ({latest_report_states(_EVENTS_BEFORE_ROUND)})"


def round_keys(rounds: dict[str, int]) -> list[str]:
    """The `{rounds}` parameter of `ROUND_OF_REPORT` for {report: round}."""
    return [f"{report}#{round_}" for report, round_ in rounds.items()]


def _by_report(rows: list[dict], reports) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {report: [] for report in reports}
    for row in rows:
        grouped[row.pop("report_id")].append(row)
    return grouped


def report_signals(db: StoreSession, teams: dict[str, int], model: str) -> dict[str, list[dict]]:
    """Each report's live signals with their `model` embeddings, in the order they joined it, for
    {report: team}."""
    if not teams:
        return {}
    params = {"teams": sorted(set(teams.values())), "reports": list(teams), "model": model}
    return _by_report(db.query(_REPORT_SIGNALS, params), teams)


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


def current_rounds(db: StoreSession, reports: list[str]) -> dict[str, int]:
    """The research round of each report's latest promotion (0 before any)."""
    rows = (
        db.query(
            "SELECT report_id, max(research_round) AS round FROM report_events "
            "WHERE report_id IN {reports} AND event = 'promoted' GROUP BY report_id",
            {"reports": reports},
        )
        if reports
        else []
    )
    return {report: 0 for report in reports} | {row["report_id"]: int(row["round"]) for row in rows}


def states_before_round(db: StoreSession, rounds: dict[str, int]) -> dict[str, dict]:
    """{status, signals_at_run} of each report without its round's summary and research events."""
    rows = db.query(_STATES_BEFORE_ROUND, {"reports": list(rounds), "rounds": round_keys(rounds)}) if rounds else []
    found = {row.pop("report_id"): row for row in rows}
    return {report: found.get(report, {"status": "", "signals_at_run": 0}) for report in rounds}


def research_states(db: StoreSession, teams: dict[str, int]) -> dict[str, dict]:
    """{status, signal_count} of each report of {report: team}: its latest status and its number of
    live signals."""
    params = {"teams": sorted(set(teams.values())), "reports": list(teams)}
    found = {row.pop("report_id"): row for row in db.query(_RESEARCH_STATES, params)} if teams else {}
    return {report: found.get(report, {"status": "", "signal_count": 0}) for report in teams}


def report_summaries(db: StoreSession, reports: list[str]) -> dict[str, dict]:
    """{title, summary} of each judged report's judgement (reports not judged yet are absent)."""
    rows = (
        db.query(
            "SELECT report_id, title, summary FROM report_summaries WHERE report_id IN {reports}", {"reports": reports}
        )
        if reports
        else []
    )
    return {row.pop("report_id"): row for row in rows}


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
    (`states_before_round`) and its `report_signals`. A weight reset sets `weight_after_batch` to the
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


def write_summaries(db: StoreSession, rounds: dict[str, int], rows: list[dict], events: list[dict]) -> None:
    """Replace the summary rows of the reports `rows` judged, and the summary events of the reports
    of `rounds` in their round (none for a judgement that leaves the lifecycle as it is): one
    delete-then-insert per table for the whole run."""
    if rows:
        db.replace_partition(
            "report_summaries", "report_id IN {reports}", rows, {"reports": [r["report_id"] for r in rows]}
        )
    if rounds:
        db.replace_partition(
            "report_events",
            SUMMARY_EVENTS_OF_ROUNDS,
            events,
            {"rounds": round_keys(rounds)},
        )


def summary_failure_event(team: int, report: str, round_: int, before: dict, reason: str) -> dict | None:
    """The round's `failed` summary event with the reason, when the report's status before the round
    (`states_before_round`) may move to failed; None when it may not (e.g. deleted)."""
    try:
        lifecycle.check_transition(before["status"] or None, lifecycle.FAILED)
    except lifecycle.InvalidTransition:
        return None
    return {
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
