"""The research stage's rows in the store: one `research_results` row per report and research round,
and the round's lifecycle events (`report_events`, stage `research`).

A round's events are written by one partition (`source` = the report id) with fixed `seq`s: 0 the
start, 1 the outcome the run recorded, 2 the failure the research reconciler recorded for a run
that died; so re-running a round replaces exactly that round's rows.
"""

import json
from datetime import datetime, timezone

from signals_assets.reports import lifecycle
from signals_assets.research.outcome import ResearchOutcome
from signals_assets.storage.clickhouse import StoreSession
from signals_assets.storage.facts import latest_report_states

STARTED_SEQ, OUTCOME_SEQ, RECONCILED_SEQ = 0, 1, 2

# Rounds still in progress by the report's latest event, with the in-progress row naming their run.
_IN_PROGRESS_ROUNDS = f"""
SELECT r.team_id AS team_id, r.report_id AS report_id, r.research_round AS research_round,
       r.dagster_run_id AS run_id, r.sandbox AS sandbox, e.signals_at_run AS signals_at_run
FROM research_results AS r
INNER JOIN ({latest_report_states()}) AS e ON e.team_id = r.team_id AND e.report_id = r.report_id
WHERE r.status = 'in_progress' AND e.status = 'in_progress'
ORDER BY r.report_id, r.research_round
"""


def _event(team: int, report: str, round_: int, event: str, status: str, **fields) -> dict:
    return {
        "team_id": team, "report_id": report, "source": report, "stage": "research", "seq": STARTED_SEQ,
        "event": event, "status": status, "title": "", "summary": "", "signals_at_run": 0, "research_round": round_,
        "detail": "", "at": datetime.now(timezone.utc), **fields,
    }


def _result(team: int, report: str, round_: int, status: str, run_id: str, **fields) -> dict:
    return {
        "team_id": team, "report_id": report, "research_round": round_, "status": status, "sandbox": "",
        "repository": "", "repository_ranking": "[]", "findings": "[]", "confidence": "", "reason": "",
        "log_key": "", "dagster_run_id": run_id, "finished_at": datetime.now(timezone.utc), **fields,
    }


def _record(db: StoreSession, result: dict, event: dict) -> None:
    """Replace the round's result row and add its event."""
    db.command(
        "DELETE FROM research_results WHERE report_id = {report} AND research_round = {round}",
        {"report": result["report_id"], "round": result["research_round"]},
    )
    db.insert("research_results", [result])
    db.insert("report_events", [event])


def clear_round_events(db: StoreSession, report: str, round_: int) -> None:
    """Remove the round's research events: a re-run replaces the round's earlier attempt."""
    db.command(
        "DELETE FROM report_events WHERE source = {report} AND stage = 'research' AND research_round = {round}",
        {"report": report, "round": round_},
    )


def record_started(db: StoreSession, team: int, report: str, round_: int, run_id: str, sandbox: str,
                   signals_at_run: int) -> None:
    """The report is in progress; the result row names the run, so the research reconciler can fail
    the report if the run dies before it records an outcome."""
    lifecycle.check_transition(lifecycle.CANDIDATE, lifecycle.IN_PROGRESS)
    _record(db, _result(team, report, round_, lifecycle.IN_PROGRESS, run_id, sandbox=sandbox),
            _event(team, report, round_, "research_started", lifecycle.IN_PROGRESS, signals_at_run=signals_at_run))


def record_failed(db: StoreSession, team: int, report: str, round_: int, run_id: str, sandbox: str, reason: str,
                  signals_at_run: int, log_key: str = "", seq: int = OUTCOME_SEQ) -> None:
    """The round failed: the report is `failed` with the reason."""
    lifecycle.check_transition(lifecycle.IN_PROGRESS, lifecycle.FAILED)
    _record(db, _result(team, report, round_, lifecycle.FAILED, run_id, sandbox=sandbox, reason=reason,
                        log_key=log_key),
            _event(team, report, round_, "failed", lifecycle.FAILED, detail=reason, seq=seq,
                   signals_at_run=signals_at_run))


def record_outcome(db: StoreSession, team: int, report: str, round_: int, run_id: str, outcome: ResearchOutcome,
                   log_key: str, summary: dict, signals_at_run: int) -> str:
    """What the agent found; the report moves to `ready` or `pending_input`. The new status."""
    status = lifecycle.READY if outcome.status == "ready" else lifecycle.PENDING_INPUT
    lifecycle.check_transition(lifecycle.IN_PROGRESS, status)
    _record(
        db,
        _result(team, report, round_, outcome.status, run_id, sandbox=outcome.sandbox,
                repository=outcome.repository or "", repository_ranking=json.dumps(outcome.repository_ranking),
                findings=json.dumps(outcome.findings), confidence=outcome.confidence, reason=outcome.reason,
                log_key=log_key),
        _event(team, report, round_, "researched", status, title=summary["title"], summary=summary["summary"],
               detail=outcome.reason, seq=OUTCOME_SEQ, signals_at_run=signals_at_run),
    )
    return status


def in_progress_rounds(db: StoreSession) -> list[dict]:
    """Research rounds whose report is still `in_progress`: {team_id, report_id, research_round, run_id,
    sandbox, signals_at_run}."""
    return db.query(_IN_PROGRESS_ROUNDS)
