"""The `reports` asset group: summary, judgement and research of promoted reports.

One run covers the reports of a partition range (the report promotion sensor requests a range of
`reports` per team; a manual materialisation may cover one report). Every report gets its own
materialisation with its own metadata, and a report that fails ends `failed` with the reason while
the others finish. The store is opened once per phase, never during a judgement or a sandbox run;
each phase reads and writes all reports of the run with one statement per table.
"""

import functools
from dataclasses import dataclass

import dagster as dg

from signals_assets.assets.grouping import report_assignments
from signals_assets.display_text import visible_escapes
from signals_assets.ingestion.teams import load_team
from signals_assets.partition_keys import report_team_id
from signals_assets.partitions import add_partition_metadata, reports
from signals_assets.recovery.attempts import attempt_unit
from signals_assets.recovery.faults import pause_point
from signals_assets.reports import lifecycle, promotions, store as report_store
from signals_assets.reports.judgement import judge_report, lifecycle_decision
from signals_assets.reports.markdown import stored_reports_markdown
from signals_assets.research import store as research_store
from signals_assets.research.context import repository_candidates, research_task
from signals_assets.research.outcome import ResearchOutcome, encode_log, failure_reason, research_log_key
from signals_assets.research.pool import run_bounded
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.embedder import EmbedderResource
from signals_assets.resources.llm import LLMResource
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.resources.sandbox import SandboxResource, run_is_alive
from signals_assets.storage.object_store import ObjectStore

# On report runs: the attempt keys (`<report>-round<N>[-retry<M>]`) of the report rounds the run covers.
ROUNDS_TAG = "signals/report_rounds"
# A UI backfill of many reports is one run, like the sensor's requests.
REPORTS_BACKFILL_POLICY = dg.BackfillPolicy.single_run()
FAILED_IN = "failed_in"  # metadata of a report whose judgement or research failed: the stage


def run_is_live(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether the Dagster run is queued or running (False when this instance does not know it)."""
    return run_is_alive(instance, run_id) is True


def rounds_taken(context: dg.AssetExecutionContext, db, rounds: dict[str, int]) -> dict[str, research_store.TakenRound]:
    """The rounds ({report: round}) this run leaves alone (`research_store.rounds_taken`): it is an
    attempt at them when it carries the rounds tag (the sensors' and `signals process`'s runs)."""
    live = functools.partial(run_is_live, context.instance)
    return research_store.rounds_taken(db, rounds, context.run.run_id, live, attempt=ROUNDS_TAG in context.run.tags)


def record_reports_metadata(context: dg.AssetExecutionContext, db, metadata: dict[str, dict]) -> None:
    """The one place the reports' own materialisation metadata ({report: metadata}) is attached, each
    on its partition only, with the report as stored now rendered as Markdown for the UI."""
    markdown = stored_reports_markdown(db, {report: report_team_id(report) for report in metadata})
    add_partition_metadata(
        context,
        {
            report: {
                **{name: visible_escapes(value) if isinstance(value, str) else value for name, value in fields.items()},
                "report": dg.MetadataValue.md(markdown[report]),
            }
            for report, fields in metadata.items()
        },
    )


def run_metadata(reports_in_run: list[str], outcomes: list[str]) -> dict:
    """Shared by every report of the run: how big the run was and how its reports ended."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    return {"reports_in_run": len(reports_in_run), "outcomes_in_run": dg.MetadataValue.json(counts)}


def summary_metadata(judgement, signal_count: int, outcome: str, provider: str) -> dict:
    return {
        "title": judgement.title,
        "signals": signal_count,
        "safety": judgement.safety.reason or "safe",
        "actionability": judgement.actionability,
        "actionability_reason": judgement.actionability_reason,
        "priority": judgement.priority,
        "lifecycle": outcome,
        "provider": provider,
    }


def status_phrase(report: str, status: str) -> str:
    """A skipped report's status, or that the store has no such report (a partition added by hand)."""
    return f"report is {status}" if status else f"no report {report} in the store"


def failure_metadata(stage: str, reason: str, research_round: int) -> dict:
    return {"status": lifecycle.FAILED, FAILED_IN: stage, "reason": reason, "research_round": research_round}


@dataclass
class _SummaryInput:
    report: str
    team: int
    round: int
    rows: list[dict]
    before: dict


@dg.asset(
    partitions_def=reports,
    backfill_policy=REPORTS_BACKFILL_POLICY,
    # A report is built from whichever batches assigned signals to it, which no static mapping can
    # name: it depends on every batch (report keys are no batch keys, so the identity default is wrong).
    deps=[dg.AssetDep(report_assignments, partition_mapping=dg.AllPartitionMapping())],
    group_name="reports",
    kinds={"clickhouse", "python"},
    description="Title, summary, report-level safety judgement, actionability and priority of each report "
    "of the run; the judgement moves a candidate report on: unsafe → failed, not actionable → potential "
    "(weight reset), needs input → pending_input, actionable → research. A report whose judgement fails "
    "ends failed with the reason; the others go on.",
)
def report_summaries(
    context: dg.AssetExecutionContext,
    clickhouse: ClickHouseResource,
    embedder: EmbedderResource,
    llm: LLMResource,
    object_store: ObjectStoreResource,
) -> dg.MaterializeResult:
    keys = list(context.partition_keys)
    session = functools.partial(clickhouse.session, log=context.log.info)
    with session() as db:
        inputs = _summary_inputs(db, keys, embedder.model_name)
        # Judged again, a round another run researches or finished could move its report back.
        taken = rounds_taken(context, db, {item.report: item.round for item in inputs})
    # Judged with the store released: the judge may call a model.
    judged: dict[str, tuple] = {}
    failures: dict[str, str] = {}
    for item in inputs:
        if item.report in taken:
            continue
        if not item.rows:
            if item.before["status"] == lifecycle.SUPPRESSED:  # merged into another report after its promotion
                continue
            failures[item.report] = (
                f"report {item.report} has no assigned signals with {embedder.model_name} embeddings"
            )
            continue
        try:
            judgement = judge_report(report_store.judged_signals(item.rows), llm.safety_judge(), llm.chat())
        except Exception as error:
            failures[item.report] = f"report judgement failed: {failure_reason(error)}"
            continue
        judged[item.report] = (judgement, lifecycle_decision(judgement))

    store = object_store.open()
    outcomes, written, rows, events = [], [], [], []
    replaced: dict[str, int] = {}  # {report: round} whose round's summary event is replaced
    metadata_by_report: dict[str, dict] = {}
    lines: list[str] = []  # one log event for the run: each is a write to the event log
    for item in inputs:
        if item.report in taken:
            metadata = {"skipped": taken[item.report].reason}
        elif item.report in failures:
            reason = failures[item.report]
            event = report_store.summary_failure_event(item.team, item.report, item.round, item.before, reason)
            if event is None:  # its status may not move to failed (e.g. deleted)
                metadata = {"skipped": f"{status_phrase(item.report, item.before['status'])}: {reason}"}
            else:
                events.append(event)
                replaced[item.report] = item.round
                metadata = failure_metadata("summary", reason, item.round)
        elif item.report not in judged:
            metadata = {"skipped": "report merged into another"}
        else:
            row, item_events, metadata = _summary_rows(item, *judged[item.report], llm.provider)
            rows.append(row)
            events += item_events
            replaced[item.report] = item.round
            written.append(item.report)
        lines.append(f"{item.report}: {metadata.get('lifecycle') or metadata.get('reason') or metadata}")
        metadata_by_report[item.report] = metadata
        outcomes.append(str(metadata.get("status", "skipped" if "skipped" in metadata else "judged")))
    if lines:
        context.log.info(visible_escapes("\n".join(lines)))
    with session() as db:
        report_store.write_summaries(db, replaced, rows, events)
        record_reports_metadata(context, db, metadata_by_report)
    for item in inputs:
        if item.report in failures:  # the round has its outcome
            promotions.promotion_done(store, item.report, item.round)
    for _ in written:
        pause_point("summarise")  # summary written, research not started
    return dg.MaterializeResult(metadata=run_metadata(keys, outcomes))


def _summary_rows(item: _SummaryInput, judgement, decision, provider: str) -> tuple[dict, list[dict], dict]:
    """The report's summary row, this round's summary event (none when the judgement leaves the
    lifecycle as it is) and its materialisation metadata."""
    events = []
    new_status = decision.moves(item.before["status"])
    if new_status is not None:
        lifecycle.check_transition(item.before["status"], new_status)
        events.append(
            report_store.summary_event(item.team, item.report, item.round, judgement, decision, item.before, item.rows)
        )
    row = report_store.summary_row(item.team, item.report, judgement, len(item.rows), provider)
    metadata = summary_metadata(judgement, len(item.rows), decision.outcome(item.before["status"]), provider)
    return row, events, {**metadata, "status": new_status} if new_status else metadata


def _summary_inputs(db, keys: list[str], model: str) -> list[_SummaryInput]:
    rounds = report_store.current_rounds(db, keys)
    teams = {report: report_team_id(report) for report in keys}
    signals = report_store.report_signals(db, teams, model)
    before = report_store.states_before_round(db, rounds)
    return [_SummaryInput(report, teams[report], rounds[report], signals[report], before[report]) for report in keys]


@dataclass
class _StartedRound:
    run: research_store.ResearchRound
    summary: dict
    task: dict
    repositories: list[dict]


@dg.asset(
    partitions_def=reports,
    backfill_policy=REPORTS_BACKFILL_POLICY,
    deps=[report_summaries],
    group_name="reports",
    kinds={"python"},
    description="Sandboxed research runs (Dagster Pipes) of the run's candidate reports, a bounded number at "
    "once: the repository and code involved in each report. A report whose research fails ends failed with "
    "the reason; the others go on.",
)
def report_research(
    context: dg.AssetExecutionContext,
    clickhouse: ClickHouseResource,
    object_store: ObjectStoreResource,
    sandbox: SandboxResource,
    embedder: EmbedderResource,
) -> dg.MaterializeResult:
    keys = list(context.partition_keys)
    teams = {report: report_team_id(report) for report in keys}
    session = functools.partial(clickhouse.session, log=context.log.info)
    store = object_store.open()
    outcomes: list[str] = []
    started: list[_StartedRound] = []
    skipped: dict[str, dict] = {}
    with session() as db:
        rounds = report_store.current_rounds(db, keys)
        taken = rounds_taken(context, db, rounds)
        # A re-run replaces the round's earlier attempt, unless another run holds or finished it.
        research_store.clear_round_events(db, {r: n for r, n in rounds.items() if r not in taken})
        states = report_store.research_states(db, teams)
        summaries = report_store.report_summaries(db, keys)
        to_research = {
            r: teams[r]
            for r in keys
            if states[r]["status"] == lifecycle.CANDIDATE and r in summaries and r not in taken
        }
        signals = report_store.report_signals(db, to_research, embedder.model_name)
        for report in keys:
            status = states[report]["status"]
            if report in taken:
                if taken[report].done:
                    promotions.promotion_done(store, report, rounds[report])
                skipped[report] = {"skipped": taken[report].reason}
            elif status != lifecycle.CANDIDATE:
                # An unsafe, not actionable or needs-input report left `candidate` in report_summaries.
                promotions.promotion_done(store, report, rounds[report])
                skipped[report] = {"skipped": status_phrase(report, status)}
            elif report not in summaries:
                context.log.warning(f"{report} has no summary yet: materialise report_summaries first")
                skipped[report] = {"skipped": "no summary yet: materialise report_summaries"}
            else:
                gate = lifecycle.research_gate(int(states[report]["signal_count"]))
                run = research_store.ResearchRound(
                    teams[report], report, rounds[report], context.run.run_id, sandbox.mode, gate
                )
                summary = summaries[report]
                started.append(_StartedRound(run, summary, research_task(report, summary, signals[report]), []))
        if skipped:  # one log event for the run: each is a write to the event log
            context.log.info(
                visible_escapes("\n".join(f"{report}: {fields['skipped']}" for report, fields in skipped.items()))
            )
        outcomes += ["skipped"] * len(skipped)
        research_store.record_started(db, [item.run for item in started])
        record_reports_metadata(context, db, skipped)
    for _ in started:
        pause_point("research")  # report in_progress, sandbox not started

    teams = {}
    for item in started:
        if item.run.team not in teams:
            config = load_team(store, item.run.team)
            teams[item.run.team] = repository_candidates(config.repositories if config else [])
        item.repositories = teams[item.run.team]

    def research(item: _StartedRound):
        return lambda cancelled: sandbox.run_research(context, item.task, item.repositories, cancelled=cancelled)

    unfinished = set(range(len(started)))
    finished: list[tuple[str, dict]] = []
    try:
        for group in run_bounded(
            [research(item) for item in started],
            sandbox.concurrency,
            stop_all=lambda: sandbox.stop_run_containers(context.run.run_id, context.log.warning),
        ):
            recorded = _record_research(
                context, session, store, [(started[i], outcome, error) for i, outcome, error in group]
            )
            unfinished.difference_update(index for index, _, _ in group)
            finished += recorded
            outcomes += [str(metadata["status"]) for _, metadata in recorded]
    except BaseException as error:  # also a terminated run (Dagster interrupts the step)
        _record_research(context, session, store, [(started[index], None, error) for index in sorted(unfinished)])
        raise
    with session() as db:
        record_reports_metadata(context, db, dict(finished))
    _fail_for_rounds_outside_the_run(context, keys)
    return dg.MaterializeResult(metadata=run_metadata(keys, outcomes))


def _fail_for_rounds_outside_the_run(context: dg.AssetExecutionContext, keys: list[str]) -> None:
    """A round the run was requested for whose report is not among its partitions (retired between the
    request and the run, so its range resolved without it) must not count as done by the run's success:
    the run fails, after its other reports, and the round is requested again with its partition."""
    outside = [
        key
        for key in context.run.tags.get(ROUNDS_TAG, "").split()
        if promotions.unit_report(attempt_unit(key)) not in keys
    ]
    if outside:
        raise dg.Failure(
            f"report round(s) {', '.join(outside)} of this run are not among its partitions (retired after the "
            "run was requested): they are requested again"
        )


def _record_research(
    context: dg.AssetExecutionContext,
    session,
    store: ObjectStore,
    rounds: list[tuple[_StartedRound, ResearchOutcome | None, BaseException | None]],
) -> list[tuple[str, dict]]:
    """Record the outcome or failure of each round (one store session, one statement per table for
    all of them) and mark their promotions done; each report's materialisation metadata."""
    rows: list[tuple[dict, dict]] = []
    recorded: list[tuple[str, dict]] = []
    for item, outcome, error in rounds:
        run = item.run
        log_key = research_log_key(run.report, run.round, run.run_id)
        if outcome is not None:
            store.put(log_key, encode_log(outcome.log_lines))
            try:
                status, result, event = research_store.outcome_rows(run, outcome, log_key, item.summary)
            except lifecycle.InvalidTransition as invalid:
                error = invalid
            else:
                rows.append((result, event))
                metadata = {
                    "status": status,
                    "repository": outcome.repository or "",
                    "findings": len(outcome.findings),
                    "log_key": log_key,
                    "research_round": run.round,
                }
                recorded.append((run.report, metadata))
                continue
        reason = failure_reason(error) if error is not None else "research ended without an outcome"
        log_lines = getattr(error, "log_lines", [])
        if log_lines:
            store.put(log_key, encode_log(log_lines))
        rows.append(research_store.failure_rows(run, reason, log_key=log_key if log_lines else ""))
        context.log.warning(visible_escapes(f"{run.report}: research failed: {reason}"))
        recorded.append(
            (run.report, {**failure_metadata("research", reason, run.round), "log_key": log_key if log_lines else ""})
        )
    if rows:
        with session() as db:
            research_store.record_rounds(db, rows)
    for item, _, _ in rounds:
        promotions.promotion_done(store, item.run.report, item.run.round)
    return recorded
