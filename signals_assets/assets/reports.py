import json
import os
from datetime import datetime, timezone

import dagster as dg

from signals_assets import lifecycle
from signals_assets.assets.grouping import report_assignments
from signals_assets.clickhouse import StoreSession
from signals_assets.partitions import report_team_id, reports
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.embedder import EmbedderResource
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.resources.sandbox import SandboxResource
from signals_assets.summaries import summarize_report
from signals_assets.teams import load_team

_REPORT_SIGNALS = """
SELECT a.signal_id AS signal_id, s.description AS description, s.source_product AS source_product,
       s.source_type AS source_type, s.source_id AS source_id, e.embedding AS embedding
FROM report_assignments AS a
INNER JOIN signals AS s ON s.signal_id = a.signal_id AND s.team_id = a.team_id
INNER JOIN signal_embeddings AS e ON e.signal_id = a.signal_id AND e.team_id = a.team_id AND e.model = {model}
WHERE a.team_id = {team} AND a.report_id = {report} AND a.deleted = 0
ORDER BY a.assigned_at, a.seq
"""

_STATE = """
SELECT argMax(status, (at, seq)) AS status, max(research_round) AS research_round,
       (SELECT count() FROM report_assignments WHERE report_id = {report} AND deleted = 0) AS signal_count
FROM report_events WHERE team_id = {team} AND report_id = {report}
"""


def report_signals(db: StoreSession, team: int, report: str, model: str) -> list[dict]:
    return db.query(_REPORT_SIGNALS, {"team": team, "report": report, "model": model})


@dg.asset(
    partitions_def=reports,
    deps=[report_assignments],
    group_name="reports",
    kinds={"clickhouse", "python"},
    description="Title, summary and report-level safety judgement from the report's most central signals.",
)
def report_summaries(
    context: dg.AssetExecutionContext, clickhouse: ClickHouseResource, embedder: EmbedderResource
) -> dg.MaterializeResult:
    report = context.partition_key
    team = report_team_id(report)
    with clickhouse.session(log=context.log.info) as db:
        signals = report_signals(db, team, report, embedder.model_name)
        if not signals:
            raise dg.Failure(f"report {report} has no assigned signals with {embedder.model_name} embeddings")
        summary = summarize_report(
            [s["signal_id"] for s in signals], [s["description"] for s in signals], [s["embedding"] for s in signals]
        )
        row = {
            "team_id": team, "report_id": report, "title": summary.title, "summary": summary.summary,
            "central_signal_ids": summary.central_signal_ids, "signal_count": len(signals), "safety": summary.safety,
            "actionability": "", "priority": "", "generated_at": datetime.now(timezone.utc),
        }
        db.replace_partition("report_summaries", "report_id = {report}", [row], {"report": report})
    return dg.MaterializeResult(
        metadata={"title": summary.title, "signals": len(signals), "safety": summary.safety}
    )


def repository_candidates(paths: list[str]) -> list[dict]:
    """Name each repository by its folder, made unique when two folders share a name."""
    names: dict[str, int] = {}
    candidates = []
    for path in paths:
        name = os.path.basename(path.rstrip("/")) or path
        names[name] = names.get(name, 0) + 1
        candidates.append({"name": name if names[name] == 1 else f"{name}-{names[name]}", "path": path})
    return candidates


def _event(team: int, report: str, round_: int, event: str, status: str, **fields) -> dict:
    return {
        "team_id": team, "report_id": report, "source": report, "stage": "research", "seq": 0, "event": event,
        "status": status, "title": "", "summary": "", "signals_at_run": 0, "research_round": round_, "detail": "",
        "at": datetime.now(timezone.utc), **fields,
    }


def _result_row(team: int, report: str, round_: int, status: str, context, **fields) -> dict:
    return {
        "team_id": team, "report_id": report, "research_round": round_, "status": status, "sandbox": "",
        "repository": "", "repository_ranking": "[]", "findings": "[]", "actionability": "", "priority": "",
        "reason": "", "log_key": "", "dagster_run_id": context.run.run_id if context else "", "finished_at": datetime.now(timezone.utc),
        **fields,
    }


def _jsonl(lines: list[dict]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _record(db: StoreSession, team: int, report: str, round_: int, result: dict, *events: dict) -> None:
    db.command(
        "DELETE FROM research_results WHERE report_id = {report} AND research_round = {round}",
        {"report": report, "round": round_},
    )
    db.insert("research_results", [result])
    db.insert("report_events", list(events))


@dg.asset(
    partitions_def=reports,
    deps=[report_summaries],
    group_name="reports",
    kinds={"python"},
    description="Sandboxed research run (Dagster Pipes): the repository and code involved in the report.",
)
def report_research(
    context: dg.AssetExecutionContext,
    clickhouse: ClickHouseResource,
    object_store: ObjectStoreResource,
    sandbox: SandboxResource,
    embedder: EmbedderResource,
) -> dg.MaterializeResult:
    report = context.partition_key
    team = report_team_id(report)
    with clickhouse.session(log=context.log.info) as db:
        promoted_round = int(db.scalar(
            "SELECT max(research_round) FROM report_events WHERE report_id = {report} AND event = 'promoted'",
            {"report": report},
        ) or 0)
        # A re-run replaces this round's earlier research attempt.
        db.command(
            "DELETE FROM report_events WHERE source = {report} AND stage = 'research' AND research_round = {round}",
            {"report": report, "round": promoted_round},
        )
        state = db.query(_STATE, {"team": team, "report": report})[0]
        if state["status"] != lifecycle.CANDIDATE:
            context.log.info(f"{report} is {state['status']}, not a candidate: nothing to research")
            return dg.MaterializeResult(metadata={"skipped": f"report is {state['status']}"})
        summary = db.query("SELECT title, summary, safety FROM report_summaries WHERE report_id = {report}",
                           {"report": report})
        signals = report_signals(db, team, report, embedder.model_name)
        if not summary:
            raise dg.Failure(f"report {report} has no summary yet: materialise report_summaries first")
        summary = summary[0]
        if summary["safety"] != "safe":
            lifecycle.check_transition(lifecycle.CANDIDATE, lifecycle.FAILED)
            reason = f"report-level safety judge: {summary['safety']}"
            _record(db, team, report, promoted_round, _result_row(team, report, promoted_round, "failed", context, reason=reason),
                    _event(team, report, promoted_round, "failed", lifecycle.FAILED, detail=reason))
            return dg.MaterializeResult(metadata={"status": "failed", "reason": reason})
        gate = lifecycle.research_gate(int(state["signal_count"]))
        lifecycle.check_transition(lifecycle.CANDIDATE, lifecycle.IN_PROGRESS)
        # The in-progress result names this run, so the research reconciler can fail the report
        # if the run dies before it records an outcome.
        _record(db, team, report, promoted_round,
                _result_row(team, report, promoted_round, lifecycle.IN_PROGRESS, context, sandbox=sandbox.mode),
                _event(team, report, promoted_round, "research_started", lifecycle.IN_PROGRESS, signals_at_run=gate))

    store = object_store.open()
    config = load_team(store, team)
    repositories = repository_candidates(config.repositories if config else [])
    task = {
        "report_id": report, "title": summary["title"], "summary": summary["summary"],
        "signals": [{k: s[k] for k in ("signal_id", "description", "source_product", "source_type")} for s in signals],
    }
    log_key = f"research_logs/{report}/round-{promoted_round}-{context.run.run_id}.jsonl"
    try:
        outcome = sandbox.run_research(context, task, repositories)
    except BaseException as error:  # also a terminated run (Dagster interrupts the step)
        reason = (str(error) if isinstance(error, Exception)
                  else f"research run was interrupted ({type(error).__name__})")[:2000]
        log_lines = getattr(error, "log_lines", [])
        if log_lines:
            store.put(log_key, _jsonl(log_lines))
        with clickhouse.session(log=context.log.info) as db:
            _record(db, team, report, promoted_round,
                    _result_row(team, report, promoted_round, "failed", context, sandbox=sandbox.mode, reason=reason,
                                log_key=log_key if log_lines else ""),
                    _event(team, report, promoted_round, "failed", lifecycle.FAILED, detail=reason,
                           seq=1, signals_at_run=gate))
        raise
    store.put(log_key, _jsonl(outcome.log_lines))
    status = lifecycle.READY if outcome.status == "ready" else lifecycle.PENDING_INPUT
    lifecycle.check_transition(lifecycle.IN_PROGRESS, status)
    with clickhouse.session(log=context.log.info) as db:
        _record(
            db, team, report, promoted_round,
            _result_row(
                team, report, promoted_round, outcome.status, context, sandbox=outcome.sandbox,
                repository=outcome.repository or "", repository_ranking=json.dumps(outcome.repository_ranking),
                findings=json.dumps(outcome.findings), actionability=outcome.actionability,
                priority=outcome.priority, reason=outcome.reason, log_key=log_key,
            ),
            _event(team, report, promoted_round, "researched", status, title=summary["title"],
                   summary=summary["summary"], detail=outcome.reason, seq=1, signals_at_run=gate),
        )
    return dg.MaterializeResult(
        metadata={
            "status": status, "repository": outcome.repository or "", "findings": len(outcome.findings),
            "log_key": log_key, "research_round": promoted_round,
        }
    )
