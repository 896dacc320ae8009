"""The research stage's rows in the store: one `research_results` row per report and research round,
and the round's lifecycle events (`report_events`, stage `research`).

A round's events are written by one partition (`source` = the report id) with fixed `seq`s: 0 the
start, 1 the outcome the run recorded, 2 the failure the research reconciler recorded for a run
that died; so re-running a round replaces exactly that round's rows.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from signals_assets.reports import lifecycle
from signals_assets.reports.store import ROUND_OF_REPORT, SUMMARY_EVENTS_OF_ROUNDS, round_keys
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


@dataclass(frozen=True)
class ResearchRound:
    """One run of a report's research round, as its rows name it."""

    team: int
    report: str
    round: int
    run_id: str
    sandbox: str  # the sandbox mode it runs in
    signals_at_run: int  # the research gate, recorded on the round's events


def _event(run: ResearchRound, event: str, status: str, **fields) -> dict:
    return {
        "team_id": run.team,
        "report_id": run.report,
        "source": run.report,
        "stage": "research",
        "seq": STARTED_SEQ,
        "event": event,
        "status": status,
        "title": "",
        "summary": "",
        "signals_at_run": run.signals_at_run,
        "research_round": run.round,
        "detail": "",
        "at": datetime.now(timezone.utc),
        **fields,
    }


def _result(run: ResearchRound, status: str, **fields) -> dict:
    return {
        "team_id": run.team,
        "report_id": run.report,
        "research_round": run.round,
        "status": status,
        "sandbox": run.sandbox,
        "repository": "",
        "repository_ranking": "[]",
        "findings": "[]",
        "confidence": "",
        "reason": "",
        "log_key": "",
        "dagster_run_id": run.run_id,
        "finished_at": datetime.now(timezone.utc),
        **fields,
    }


def _replace_results(db: StoreSession, results: list[dict]) -> None:
    """Replace the result rows of the rounds (one round per report): one statement for all of them."""
    keys = round_keys({result["report_id"]: result["research_round"] for result in results})
    db.replace_partition("research_results", ROUND_OF_REPORT, results, {"rounds": keys})


def record_rounds(db: StoreSession, rounds: list[tuple[dict, dict]]) -> None:
    """Record the outcomes of the rounds ([(result, event)], one round per report): their events, then
    their result rows, one statement per table for all of them. The result row goes last because an
    outcome there tells a retry that the round is done (`rounds_taken`): written first, a kill before
    the event would leave the report `in_progress` with nothing left to finish it. Killed after the
    event, the row still names the dead run, so a retry clears the round and researches it again."""
    if rounds:
        db.insert("report_events", [event for _, event in rounds])
        _replace_results(db, [result for result, _ in rounds])


def clear_round_events(db: StoreSession, rounds: dict[str, int]) -> None:
    """Remove the research events of each report's round ({report: round}): a re-run replaces the
    round's earlier attempt."""
    if rounds:
        db.delete_where(
            "report_events",
            f"source = report_id AND stage = 'research' AND {ROUND_OF_REPORT}",
            {"rounds": round_keys(rounds)},
        )


@dataclass(frozen=True)
class TakenRound:
    """A report's current round that a run must leave alone rather than clear and research again."""

    reason: str
    done: bool  # the round has its outcome (its promotion is done); False: another run researches it


def rounds_taken(
    db: StoreSession, rounds: dict[str, int], run_id: str, run_is_live: Callable[[str], bool], attempt: bool
) -> dict[str, TakenRound]:
    """The reports of `rounds` ({report: round}) whose round run `run_id` must leave alone: one another
    run started and is still researching (`run_is_live`), and, when this run is an attempt at the rounds
    (the sensors' and `signals process`'s runs, not a manual re-run, which replaces the round), one that
    has its outcome already. Two runs of one round happen when two `signals process` (or one beside the
    daemon) decide at once, or a run is retried after recording an outcome but before its promotion was
    marked done: clearing the round's events would let both research it and record two outcomes."""
    if not rounds:
        return {}
    rows = db.query(
        f"SELECT report_id, research_round, status, dagster_run_id FROM research_results WHERE {ROUND_OF_REPORT}",
        {"rounds": round_keys(rounds)},
    )
    taken = {}
    for row in rows:
        other, round_ = row["dagster_run_id"], row["research_round"]
        if row["status"] == lifecycle.IN_PROGRESS:
            if other != run_id and run_is_live(other):
                taken[row["report_id"]] = TakenRound(f"research round {round_} is in progress in run {other}", False)
        elif attempt:
            reason = f"research round {round_} already has its outcome ({row['status']}, run {other})"
            taken[row["report_id"]] = TakenRound(reason, True)
    return taken


# The rounds ({report: round}) that have their outcome: the summary moved the report on (its only event
# of the round: a judgement that leaves it `candidate` writes none), or the research finished.
_CONCLUDED_ROUNDS = f"""
SELECT report_id, research_round FROM research_results
WHERE {ROUND_OF_REPORT} AND status != '{lifecycle.IN_PROGRESS}'
UNION ALL
SELECT report_id, research_round FROM report_events WHERE {SUMMARY_EVENTS_OF_ROUNDS}
"""


def without_outcome(db: StoreSession, promotions: list[dict]) -> list[dict]:
    """The promotions ({report_id, round, …}) whose round has no outcome yet. A re-grouping of a batch (a
    backfill) promotes the rounds it promoted before: those that are done need no research run."""
    if not promotions:
        return []
    keys = round_keys({p["report_id"]: p["round"] for p in promotions})
    done = {(r["report_id"], int(r["research_round"])) for r in db.query(_CONCLUDED_ROUNDS, {"rounds": keys})}
    return [p for p in promotions if (p["report_id"], p["round"]) not in done]


def record_started(db: StoreSession, runs: list[ResearchRound]) -> None:
    """The reports are in progress; each result row names the run, so the research reconciler can fail
    a report if the run dies before it records an outcome. One statement per table for all of them."""
    lifecycle.check_transition(lifecycle.CANDIDATE, lifecycle.IN_PROGRESS)
    if runs:
        # The rows first: a report the event makes `in_progress` always has the row naming its run,
        # which the reconciler needs to fail it if the run dies (a kill between the two statements
        # leaves the report as it was, its round still to do).
        _replace_results(db, [_result(run, lifecycle.IN_PROGRESS) for run in runs])
        db.insert("report_events", [_event(run, "research_started", lifecycle.IN_PROGRESS) for run in runs])


def failure_rows(run: ResearchRound, reason: str, log_key: str = "", seq: int = OUTCOME_SEQ) -> tuple[dict, dict]:
    """The round failed: the report is `failed` with the reason. Its (result, event) for `record_rounds`."""
    lifecycle.check_transition(lifecycle.IN_PROGRESS, lifecycle.FAILED)
    return (
        _result(run, lifecycle.FAILED, reason=reason, log_key=log_key),
        _event(run, "failed", lifecycle.FAILED, detail=reason, seq=seq),
    )


def record_failed(db: StoreSession, run: ResearchRound, reason: str, log_key: str = "", seq: int = OUTCOME_SEQ) -> None:
    """One round failed (the research reconciler's)."""
    record_rounds(db, [failure_rows(run, reason, log_key, seq)])


def outcome_rows(run: ResearchRound, outcome: ResearchOutcome, log_key: str, summary: dict) -> tuple[str, dict, dict]:
    """What the agent found; the report moves to `ready` or `pending_input`. The new status and the
    round's (result, event) for `record_rounds`."""
    status = lifecycle.READY if outcome.status == "ready" else lifecycle.PENDING_INPUT
    lifecycle.check_transition(lifecycle.IN_PROGRESS, status)
    result = _result(
        run,
        outcome.status,
        repository=outcome.repository or "",
        repository_ranking=json.dumps(outcome.repository_ranking),
        findings=json.dumps(outcome.findings),
        confidence=outcome.confidence,
        reason=outcome.reason,
        log_key=log_key,
    )
    event = _event(
        run,
        "researched",
        status,
        title=summary["title"],
        summary=summary["summary"],
        detail=outcome.reason,
        seq=OUTCOME_SEQ,
    )
    return status, result, event


def in_progress_rounds(db: StoreSession) -> list[ResearchRound]:
    """The research rounds whose report is still `in_progress`, each with the run its row names."""
    return [
        ResearchRound(
            row["team_id"],
            row["report_id"],
            row["research_round"],
            row["run_id"],
            row["sandbox"],
            row["signals_at_run"],
        )
        for row in db.query(_IN_PROGRESS_ROUNDS)
    ]
