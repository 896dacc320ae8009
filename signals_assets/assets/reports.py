import json
import os
from datetime import datetime, timezone

import dagster as dg

from signals_assets import lifecycle, promotions
from signals_assets.assets.grouping import current_assignments, report_assignments
from signals_assets.clickhouse import StoreSession
from signals_assets.faults import pause_point
from signals_assets.partitions import report_team_id, reports
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.embedder import EmbedderResource
from signals_assets.resources.llm import LLMResource
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.resources.sandbox import SandboxResource
from signals_assets.summaries import ReportSignal, judge_report, lifecycle_decision, parse_extra
from signals_assets.teams import load_team

_CURRENT = current_assignments("team_id = {team}")

_REPORT_SIGNALS = f"""
SELECT a.signal_id AS signal_id, s.description AS description, s.source_product AS source_product,
       s.source_type AS source_type, s.source_id AS source_id, e.embedding AS embedding, a.weight AS weight,
       s.extra AS extra, a.first_batch_key AS batch_key
FROM ({_CURRENT}) AS a
INNER JOIN signals AS s ON s.signal_id = a.signal_id AND s.team_id = a.team_id
INNER JOIN signal_embeddings AS e ON e.signal_id = a.signal_id AND e.team_id = a.team_id AND e.model = {{model}}
WHERE a.report_id = {{report}} AND a.deleted = 0
ORDER BY a.first_position
"""

_STATE = f"""
SELECT argMax(status, (at, seq)) AS status, max(research_round) AS research_round,
       (SELECT count() FROM ({_CURRENT}) WHERE report_id = {{report}} AND deleted = 0) AS signal_count
FROM report_events WHERE team_id = {{team}} AND report_id = {{report}}
"""


def report_signals(db: StoreSession, team: int, report: str, model: str) -> list[dict]:
    return db.query(_REPORT_SIGNALS, {"team": team, "report": report, "model": model})


# The report's state as its promotion left it: without this round's summary and research events, so
# re-running a round judges it afresh.
_ROUND_BASE = """
SELECT argMax(status, (at, seq)) AS status, argMax(signals_at_run, (at, seq)) AS signals_at_run
FROM report_events
WHERE team_id = {team} AND report_id = {report}
  AND NOT (source = {report} AND stage IN ('summary', 'research') AND research_round = {round})
"""


def current_round(db: StoreSession, report: str) -> int:
    """The research round of the report's latest promotion."""
    return int(db.scalar(
        "SELECT max(research_round) FROM report_events WHERE report_id = {report} AND event = 'promoted'",
        {"report": report},
    ) or 0)


@dg.asset(
    partitions_def=reports,
    deps=[report_assignments],
    group_name="reports",
    kinds={"clickhouse", "python"},
    description="Title, summary, report-level safety judgement, actionability and priority; the judgement "
    "moves a candidate report on: unsafe → failed, not actionable → potential (weight reset), needs input → "
    "pending_input, actionable → research.",
)
def report_summaries(
    context: dg.AssetExecutionContext, clickhouse: ClickHouseResource, embedder: EmbedderResource, llm: LLMResource
) -> dg.MaterializeResult:
    report = context.partition_key
    team = report_team_id(report)
    with clickhouse.session(log=context.log.info) as db:
        rows = report_signals(db, team, report, embedder.model_name)
        round_ = current_round(db, report)
        base = db.query(_ROUND_BASE, {"team": team, "report": report, "round": round_})[0]
    if not rows:
        if base["status"] == lifecycle.SUPPRESSED:  # merged into another report after its promotion
            context.log.info(f"{report} was merged into another report: nothing to summarise")
            return dg.MaterializeResult(metadata={"skipped": "report merged into another"})
        raise dg.Failure(f"report {report} has no assigned signals with {embedder.model_name} embeddings")
    signals = [ReportSignal(r["signal_id"], r["description"], r["source_product"], r["source_type"], float(r["weight"]),
                            parse_extra(r["extra"]), r["embedding"]) for r in rows]
    # Judged with the store released: the judge may call a model.
    judgement = judge_report(signals, llm.safety_judge(), llm.chat())
    decision = lifecycle_decision(judgement)
    applies = base["status"] == lifecycle.CANDIDATE and decision.status is not None
    if applies:
        lifecycle.check_transition(base["status"], decision.status)
    safety = judgement.safety
    row = {
        "team_id": team, "report_id": report, "title": judgement.title, "summary": judgement.summary,
        "central_signal_ids": judgement.central_signal_ids, "signal_count": len(signals),
        "safety": "safe" if safety.safe else "unsafe", "safety_kind": safety.kind, "safety_quote": safety.display_quote,
        "actionability": judgement.actionability, "actionability_reason": judgement.actionability_reason,
        "priority": judgement.priority, "priority_reason": judgement.priority_reason, "provider": llm.provider,
        "generated_at": datetime.now(timezone.utc),
    }
    events = [{
        "team_id": team, "report_id": report, "source": report, "stage": "summary", "seq": 0, "event": decision.event,
        "status": decision.status, "title": judgement.title, "summary": judgement.summary,
        "signals_at_run": int(base["signals_at_run"]), "research_round": round_, "detail": decision.detail,
        "at": datetime.now(timezone.utc),
        # Only signals of later batches count toward the weight from now on (the reports view and grouping).
        "weight_after_batch": max(r["batch_key"] for r in rows) if decision.resets_weight else "",
    }] if applies else []
    with clickhouse.session(log=context.log.info) as db:
        db.replace_partition("report_summaries", "report_id = {report}", [row], {"report": report})
        db.replace_partition(
            "report_events", "source = {report} AND stage = 'summary' AND research_round = {round}", events,
            {"report": report, "round": round_},
        )
    pause_point("summarise")  # summary written, research not started
    if base["status"] != lifecycle.CANDIDATE:
        outcome = f"report is {base['status']}, not a candidate: lifecycle unchanged"
    elif decision.status is None:
        outcome = "actionable: research follows"
    else:
        outcome = f"{decision.status}: {decision.detail}"
    context.log.info(f"{report}: {outcome}")
    return dg.MaterializeResult(
        metadata={
            "title": judgement.title, "signals": len(signals), "safety": safety.reason or "safe",
            "actionability": judgement.actionability, "actionability_reason": judgement.actionability_reason,
            "priority": judgement.priority, "lifecycle": outcome, "provider": llm.provider,
        }
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
        promoted_round = current_round(db, report)
        # A re-run replaces this round's earlier research attempt.
        db.command(
            "DELETE FROM report_events WHERE source = {report} AND stage = 'research' AND research_round = {round}",
            {"report": report, "round": promoted_round},
        )
        state = db.query(_STATE, {"team": team, "report": report})[0]
        if state["status"] != lifecycle.CANDIDATE:
            context.log.info(f"{report} is {state['status']}, not a candidate: nothing to research")
            promotions.promotion_done(object_store.open(), report, promoted_round)
            return dg.MaterializeResult(metadata={"skipped": f"report is {state['status']}"})
        summary = db.query("SELECT title, summary FROM report_summaries WHERE report_id = {report}",
                           {"report": report})
        signals = report_signals(db, team, report, embedder.model_name)
        if not summary:
            raise dg.Failure(f"report {report} has no summary yet: materialise report_summaries first")
        # An unsafe, not actionable or needs-input report left `candidate` in report_summaries.
        summary = summary[0]
        gate = lifecycle.research_gate(int(state["signal_count"]))
        lifecycle.check_transition(lifecycle.CANDIDATE, lifecycle.IN_PROGRESS)
        # The in-progress result names this run, so the research reconciler can fail the report
        # if the run dies before it records an outcome.
        _record(db, team, report, promoted_round,
                _result_row(team, report, promoted_round, lifecycle.IN_PROGRESS, context, sandbox=sandbox.mode),
                _event(team, report, promoted_round, "research_started", lifecycle.IN_PROGRESS, signals_at_run=gate))

    pause_point("research")  # report in_progress, sandbox not started
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
        promotions.promotion_done(store, report, promoted_round)
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
    promotions.promotion_done(store, report, promoted_round)
    return dg.MaterializeResult(
        metadata={
            "status": status, "repository": outcome.repository or "", "findings": len(outcome.findings),
            "log_key": log_key, "research_round": promoted_round,
        }
    )
