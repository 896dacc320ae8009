import dagster as dg

from signals_assets.assets.grouping import report_assignments
from signals_assets.ingestion.teams import load_team
from signals_assets.partitions import report_team_id, reports
from signals_assets.recovery.faults import pause_point
from signals_assets.reports import lifecycle, promotions, store as report_store
from signals_assets.reports.judgement import judge_report, lifecycle_decision
from signals_assets.research import store as research_store
from signals_assets.research.context import repository_candidates, research_task
from signals_assets.research.outcome import encode_log, failure_reason, research_log_key
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.embedder import EmbedderResource
from signals_assets.resources.llm import LLMResource
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.resources.sandbox import SandboxResource


@dg.asset(
    partitions_def=reports,
    # A report is built from whichever batches assigned signals to it, which no static mapping can
    # name: it depends on every batch (report keys are no batch keys, so the identity default is wrong).
    deps=[dg.AssetDep(report_assignments, partition_mapping=dg.AllPartitionMapping())],
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
        rows = report_store.report_signals(db, team, report, embedder.model_name)
        round_ = report_store.current_round(db, report)
        before = report_store.state_before_round(db, team, report, round_)
    if not rows:
        if before["status"] == lifecycle.SUPPRESSED:  # merged into another report after its promotion
            context.log.info(f"{report} was merged into another report: nothing to summarise")
            return dg.MaterializeResult(metadata={"skipped": "report merged into another"})
        raise dg.Failure(f"report {report} has no assigned signals with {embedder.model_name} embeddings")
    # Judged with the store released: the judge may call a model.
    judgement = judge_report(report_store.judged_signals(rows), llm.safety_judge(), llm.chat())
    decision = lifecycle_decision(judgement)
    events = []
    new_status = decision.moves(before["status"])
    if new_status is not None:
        lifecycle.check_transition(before["status"], new_status)
        events.append(report_store.summary_event(team, report, round_, judgement, decision, before, rows))
    with clickhouse.session(log=context.log.info) as db:
        report_store.write_summary(
            db, report, round_, report_store.summary_row(team, report, judgement, len(rows), llm.provider), events
        )
    pause_point("summarise")  # summary written, research not started
    outcome = decision.outcome(before["status"])
    context.log.info(f"{report}: {outcome}")
    return dg.MaterializeResult(
        metadata={
            "title": judgement.title,
            "signals": len(rows),
            "safety": judgement.safety.reason or "safe",
            "actionability": judgement.actionability,
            "actionability_reason": judgement.actionability_reason,
            "priority": judgement.priority,
            "lifecycle": outcome,
            "provider": llm.provider,
        }
    )


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
        round_ = report_store.current_round(db, report)
        research_store.clear_round_events(db, report, round_)  # a re-run replaces the round's earlier attempt
        state = report_store.research_state(db, team, report)
        if state["status"] != lifecycle.CANDIDATE:
            # An unsafe, not actionable or needs-input report left `candidate` in report_summaries.
            context.log.info(f"{report} is {state['status']}, not a candidate: nothing to research")
            promotions.promotion_done(object_store.open(), report, round_)
            return dg.MaterializeResult(metadata={"skipped": f"report is {state['status']}"})
        summary = report_store.report_summary(db, report)
        signals = report_store.report_signals(db, team, report, embedder.model_name)
        if summary is None:
            raise dg.Failure(f"report {report} has no summary yet: materialise report_summaries first")
        gate = lifecycle.research_gate(int(state["signal_count"]))
        run = research_store.ResearchRound(team, report, round_, context.run.run_id, sandbox.mode, gate)
        research_store.record_started(db, run)

    pause_point("research")  # report in_progress, sandbox not started
    store = object_store.open()
    config = load_team(store, team)
    repositories = repository_candidates(config.repositories if config else [])
    log_key = research_log_key(report, round_, run.run_id)
    try:
        outcome = sandbox.run_research(context, research_task(report, summary, signals), repositories)
    except BaseException as error:  # also a terminated run (Dagster interrupts the step)
        log_lines = getattr(error, "log_lines", [])
        if log_lines:
            store.put(log_key, encode_log(log_lines))
        with clickhouse.session(log=context.log.info) as db:
            research_store.record_failed(db, run, failure_reason(error), log_key=log_key if log_lines else "")
        promotions.promotion_done(store, report, round_)
        raise
    store.put(log_key, encode_log(outcome.log_lines))
    with clickhouse.session(log=context.log.info) as db:
        status = research_store.record_outcome(db, run, outcome, log_key, summary)
    promotions.promotion_done(store, report, round_)
    return dg.MaterializeResult(
        metadata={
            "status": status,
            "repository": outcome.repository or "",
            "findings": len(outcome.findings),
            "log_key": log_key,
            "research_round": round_,
        }
    )
