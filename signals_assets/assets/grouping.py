from dataclasses import dataclass, field
from datetime import timedelta
from itertools import groupby

import dagster as dg
from pydantic import Field

from signals_assets import inbox, promotions as promotion_facts
from signals_assets.assets.embeddings import signal_embeddings
from signals_assets.assets.ingest import BATCH_BACKFILL_POLICY
from signals_assets.clickhouse import StoreSession
from signals_assets.consolidation import PoolSignal
from signals_assets.faults import pause_point
from signals_assets.grouping import (
    OPEN_STATUSES, TOP_K, BatchSignal, Candidate, ReportStats, consolidate, plan_batch,
)
from signals_assets.lifecycle import ReportState
from signals_assets.partitions import batch_time, signal_batches
from signals_assets.providers import Provider
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.embedder import EmbedderResource
from signals_assets.resources.llm import LLMResource
from signals_assets.resources.object_store import ObjectStoreResource

GROUPING_POOL = "signals_grouping"
PROMOTED_METADATA_KEY = "promoted_reports"
# Set on its own run when report_assignments refuses to group ahead of an earlier unfinished batch;
# the value is the run id, so Dagster's retries (which copy their parent's tags) do not inherit it.
REFUSED_TAG = "signals/refused_out_of_order"

_BATCH_SIGNALS = """
SELECT s.team_id AS team_id, s.signal_id AS signal_id, s.description AS description, s.weight AS weight,
       e.embedding AS embedding
FROM signals AS s
INNER JOIN signal_embeddings AS e ON e.signal_id = s.signal_id AND e.team_id = s.team_id
WHERE s.batch_key = {batch} AND e.batch_key = {batch} AND e.model = {model}
  AND (length({teams}) = 0 OR has({teams}, s.team_id))
ORDER BY s.team_id, s.emitted_at, s.signal_id
"""


def current_assignments(where: str) -> str:
    """Each signal's current assignment: the latest row by (batch_key, seq), since consolidation may
    re-assign a signal of an earlier batch in a later one; `first_*` keep when it first arrived."""
    return f"""
    SELECT team_id, signal_id, argMax(report_id, (batch_key, seq)) AS report_id,
           argMax(weight, (batch_key, seq)) AS weight, argMax(deleted, (batch_key, seq)) AS deleted,
           min(assigned_at) AS first_assigned_at, min(batch_key) AS first_batch_key,
           min((batch_key, seq)) AS first_position
    FROM report_assignments WHERE {where}
    GROUP BY team_id, signal_id"""


# Everything the grouping of a batch reads is as of before that batch, so re-grouping a batch sees
# exactly what it saw the first time.
_BEFORE_BATCH = current_assignments("team_id = {team} AND batch_key < {batch}")

# Nearest assigned signals of the team for every probe, in one scan of the embeddings.
_NEAREST = f"""
WITH {{probes}} AS probes
SELECT idx AS probe, e.signal_id AS signal_id, a.report_id AS report_id,
       1 - cosineDistance(e.embedding, probes[idx]) AS similarity
FROM signal_embeddings AS e
INNER JOIN ({_BEFORE_BATCH}) AS a ON a.signal_id = e.signal_id
ARRAY JOIN arrayEnumerate(probes) AS idx
WHERE e.team_id = {{team}} AND e.model = {{model}} AND e.batch_key < {{batch}}
  AND a.deleted = 0 AND a.first_assigned_at >= {{since}}
ORDER BY probe, similarity DESC, signal_id
LIMIT {{k}} BY probe
"""

_LATEST_EVENTS = """
    SELECT report_id, argMax(status, (at, seq)) AS status, argMax(signals_at_run, (at, seq)) AS signals_at_run,
           max(research_round) AS research_round, argMaxIf(title, (at, seq), title != '') AS title,
           argMaxIf(weight_after_batch, (at, seq), weight_after_batch != '') AS weight_after_batch
    FROM report_events
    WHERE team_id = {team} AND NOT (stage = 'grouping' AND source >= {batch})
    GROUP BY report_id"""

# The weight counts only signals first grouped after the report's latest weight reset (see reports.sql).
_REPORT_STATES = f"""
SELECT ev.report_id AS report_id, ev.status AS status, ev.signals_at_run AS signals_at_run,
       ev.research_round AS research_round, ev.title AS title, c.signal_count AS signal_count,
       arraySum(arrayFilter((w, b) -> b > ev.weight_after_batch, c.weights, c.batch_keys)) AS total_weight,
       c.vector_sum AS vector_sum
FROM ({_LATEST_EVENTS}) AS ev
INNER JOIN (
    SELECT a.report_id AS report_id, count() AS signal_count, groupArray(a.weight) AS weights,
           groupArray(a.first_batch_key) AS batch_keys, sumForEach(e.embedding) AS vector_sum
    FROM ({_BEFORE_BATCH}) AS a
    INNER JOIN signal_embeddings AS e ON e.signal_id = a.signal_id AND e.team_id = a.team_id AND e.model = {{model}}
    WHERE a.report_id IN {{ids}} AND a.deleted = 0
    GROUP BY a.report_id
) AS c ON c.report_id = ev.report_id
WHERE ev.report_id IN {{ids}}
"""

_TEXTS = f"""
SELECT a.report_id AS report_id, s.signal_id AS signal_id, s.description AS description
FROM ({_BEFORE_BATCH}) AS a INNER JOIN signals AS s ON s.signal_id = a.signal_id AND s.team_id = a.team_id
WHERE a.report_id IN {{ids}} AND a.deleted = 0
ORDER BY a.report_id, a.first_position
LIMIT 8 BY a.report_id
"""

# The open pool for consolidation: live signals of reports whose research has not started, newest
# `limit` within the window (returned newest first).
_OPEN_POOL = f"""
SELECT a.signal_id AS signal_id, a.report_id AS report_id, e.embedding AS embedding, s.description AS description,
       if(a.first_batch_key > ev.weight_after_batch, a.weight, 0) AS weight  -- as counted in the report's weight
FROM ({_BEFORE_BATCH}) AS a
INNER JOIN ({_LATEST_EVENTS}) AS ev ON ev.report_id = a.report_id
INNER JOIN signal_embeddings AS e ON e.signal_id = a.signal_id AND e.team_id = a.team_id AND e.model = {{model}}
INNER JOIN signals AS s ON s.signal_id = a.signal_id AND s.team_id = a.team_id
WHERE a.deleted = 0 AND a.first_assigned_at >= {{since}} AND ev.status IN {{open}}
ORDER BY a.first_position DESC
LIMIT {{limit}}
"""


class GroupingConfig(dg.Config):
    team_ids: list[int] = Field(
        default_factory=list, description="Re-group only these teams (empty: every team in the batch)."
    )
    window_days: int = Field(default=30, description="Only signals assigned this recently are candidates.")


@dataclass
class TeamContext:
    """What the store says before one team's part of a batch is decided."""

    signals: list[BatchSignal]
    candidates: dict[str, list[Candidate]]
    stats: dict[str, ReportStats] = field(default_factory=dict)
    states: dict[str, ReportState] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    open_pool: list[PoolSignal] = field(default_factory=list)  # oldest first; read only when consolidating


def _read_team(db: StoreSession, team: int, batch: str, model: str, since, signals: list[BatchSignal],
               with_texts: bool, pool_limit: int = 0) -> TeamContext:
    probes = [(s, p) for s in signals for p in (s.embedding, *s.probes)]
    rows = db.query(_NEAREST, {"probes": [list(map(float, p)) for _, p in probes], "team": team, "batch": batch,
                               "model": model, "since": since, "k": TOP_K})
    context = TeamContext(signals, {})
    probe_numbers = [i for s in signals for i in range(1 + len(s.probes))]
    for row in rows:
        signal = probes[row["probe"] - 1][0]
        context.candidates.setdefault(signal.signal_id, []).append(
            Candidate(row["signal_id"], row["report_id"], row["similarity"], probe_numbers[row["probe"] - 1]))
    if pool_limit:
        rows = db.query(_OPEN_POOL, {"team": team, "batch": batch, "model": model, "since": since,
                                     "open": list(OPEN_STATUSES), "limit": pool_limit})
        context.open_pool = [PoolSignal(r["signal_id"], r["report_id"], r["embedding"], float(r["weight"]),
                                        r["description"]) for r in reversed(rows)]
    ids = sorted({c.report_id for found in context.candidates.values() for c in found}
                 | {p.report_id for p in context.open_pool})
    if not ids:
        return context
    params = {"team": team, "batch": batch, "ids": ids, "model": model}
    examples: dict[str, list[str]] = {}
    if with_texts:
        for row in db.query(_TEXTS, params):
            examples.setdefault(row["report_id"], []).append(row["description"])
            context.texts[row["signal_id"]] = row["description"]
    # Reports whose signals are all deleted (or newer than this batch) are no candidates.
    for row in db.query(_REPORT_STATES, params):
        context.states[row["report_id"]] = ReportState(
            row["report_id"], row["status"], int(row["signal_count"]), float(row["total_weight"]),
            int(row["signals_at_run"]), int(row["research_round"]))
        context.stats[row["report_id"]] = ReportStats(
            row["vector_sum"], int(row["signal_count"]), row["title"], examples.get(row["report_id"], []))
    return context


def _with_probes(signals: list[BatchSignal], provider: Provider, embedder: EmbedderResource) -> list[BatchSignal]:
    """Each signal with its search queries embedded as extra probes (outside any store session)."""
    queries = [provider.search_queries(s) for s in signals]
    flat = [q for qs in queries for q in qs]
    vectors = iter(embedder.embed(flat)) if flat else iter(())
    return [
        BatchSignal(s.signal_id, s.team_id, s.description, s.weight, s.embedding, tuple(next(vectors) for _ in qs))
        for s, qs in zip(signals, queries)
    ]


def group_batch(
    clickhouse: ClickHouseResource, log, batch: str, config: GroupingConfig, provider: Provider,
    embedder: EmbedderResource,
) -> tuple[list[dict], list[dict], list[dict]]:
    """Assignment rows, event rows and promotions for one batch.

    Reads, then decides with the store released (a provider may call a model), then writes."""
    at = batch_time(batch)
    since = at - timedelta(days=config.window_days)
    with clickhouse.session(log=log) as db:
        rows = db.query(_BATCH_SIGNALS, {"batch": batch, "model": embedder.model_name, "teams": config.team_ids})
    by_team = {team: [BatchSignal(r["signal_id"], team, r["description"], r["weight"], r["embedding"]) for r in rows]
               for team, rows in groupby(rows, key=lambda r: r["team_id"])}
    by_team = {team: _with_probes(signals, provider, embedder) for team, signals in by_team.items()}
    with clickhouse.session(log=log) as db:
        contexts = {team: _read_team(db, team, batch, embedder.model_name, since, signals, provider.needs_texts,
                                     provider.consolidation.pool_limit if provider.consolidation else 0)
                    for team, signals in by_team.items()}
    assignments, events, promotions = [], [], []
    for team, context in contexts.items():
        before = dict(context.states)
        plan = plan_batch(context.signals, context.candidates, context.stats, context.states, provider.decide,
                          context.texts)
        pause_point("group")  # decided in memory, nothing written
        if provider.consolidation:
            plan = consolidate(plan, context.signals, context.open_pool, before, context.states, provider.consolidation)
            pause_point("consolidate")  # consolidated in memory, nothing written
        for a in plan.assignments:
            assignments.append({
                "team_id": team, "signal_id": a.signal_id, "batch_key": batch, "seq": len(assignments),
                "report_id": a.report_id, "decision": a.decision, "matched_signal_id": a.matched_signal_id,
                "similarity": a.similarity, "weight": a.weight, "deleted": int(a.deleted), "assigned_at": at,
            })
        for e in plan.events:
            events.append({
                "team_id": team, "report_id": e.report_id, "source": batch, "stage": "grouping", "seq": len(events),
                "event": e.event, "status": e.status, "title": e.title, "summary": e.summary,
                "signals_at_run": e.signals_at_run, "research_round": e.research_round, "detail": e.detail, "at": at,
            })
        promotions += [{"report_id": e.report_id, "team_id": team, "round": e.research_round} for e in plan.promotions]
    return assignments, events, promotions


_TEAM_FILTER = "(length({teams}) = 0 OR has({teams}, team_id))"


def _write_batch(db: StoreSession, batch: str, teams: list[int], assignments, events, last_key: str) -> None:
    """Replace the batch's grouping facts; refuse a changed re-grouping that later batches built on.

    A report whose members changed loses what the report stages wrote for it (summary, research,
    their events): it is promoted and researched again as the new grouping says."""
    params = {"batch": batch, "teams": teams, "last": last_key}
    before = {(r["signal_id"], r["report_id"], r["deleted"]) for r in db.query(
        f"SELECT signal_id, report_id, deleted FROM report_assignments WHERE batch_key = {{batch}} AND {_TEAM_FILTER}",
        params)}
    after = {(a["signal_id"], a["report_id"], a["deleted"]) for a in assignments}
    later = db.query(f"SELECT DISTINCT batch_key FROM report_assignments WHERE batch_key > {{last}} AND {_TEAM_FILTER} "
                     "ORDER BY batch_key LIMIT 3", params)
    if before and before != after and later:
        raise dg.Failure(
            f"re-grouping {batch} changes its reports, and later batches ({', '.join(r['batch_key'] for r in later)}…) "
            "were grouped against the old ones: re-run the range up to the last batch in one run, or "
            "`signals regroup --team-id N`"
        )
    db.replace_partition("report_assignments", f"batch_key = {{batch}} AND {_TEAM_FILTER}", assignments, params)
    db.replace_partition("report_events", f"source = {{batch}} AND stage = 'grouping' AND {_TEAM_FILTER}", events,
                         params)
    changed = sorted({report for _, report, _ in before ^ after}) if before else []
    if changed:
        db.command("DELETE FROM report_events WHERE report_id IN {ids} AND stage != 'grouping'", {"ids": changed})
        for table in ("report_summaries", "research_results"):
            db.command(f"DELETE FROM {table} WHERE report_id IN {{ids}}", {"ids": changed})


@dg.asset(
    partitions_def=signal_batches,
    backfill_policy=BATCH_BACKFILL_POLICY,
    deps=[signal_embeddings],
    pool=GROUPING_POOL,
    group_name="grouping",
    kinds={"clickhouse", "python"},
    description="Which report each signal joins (append-only facts) and the report lifecycle events "
    "it causes; promoted reports are recorded under `promotions/` in the object store for "
    "report_promotion_sensor (and listed in the metadata). Refuses while an earlier batch is unfinished.",
)
def report_assignments(
    context: dg.AssetExecutionContext,
    config: GroupingConfig,
    clickhouse: ClickHouseResource,
    embedder: EmbedderResource,
    llm: LLMResource,
    object_store: ObjectStoreResource,
) -> dg.MaterializeResult:
    store = object_store.open()
    keys = sorted(context.partition_keys)
    earlier = inbox.earlier_unfinished_batches(store, keys[0])
    if earlier:
        context.instance.add_run_tags(context.run_id, {REFUSED_TAG: context.run_id})
        raise dg.Failure(
            f"batch {keys[0]} waits for {len(earlier)} earlier unfinished batch(es) ({', '.join(earlier[:3])}"
            f"{'…' if len(earlier) > 3 else ''}): batches are grouped in key order; it is requested again once "
            "they are grouped or parked", allow_retries=False,
        )
    provider = llm.grouping()
    all_promotions, assigned, created = [], 0, 0
    # Batches in key order: a later batch must see the reports of the earlier ones.
    for batch in keys:
        assignments, events, promotions = group_batch(clickhouse, context.log.info, batch, config, provider, embedder)
        with clickhouse.session(log=context.log.info) as db:
            _write_batch(db, batch, config.team_ids, assignments, events, keys[-1])
        pause_point("promote")  # assignments and promotions written, promotions not yet recorded
        promotion_facts.record_promotions(store, batch, promotions)
        if not config.team_ids:  # re-grouping some teams does not finish the batch for the others
            inbox.mark_stage_done(store, batch, inbox.GROUPED, context.run_id)
        assigned += len(assignments)
        created += sum(1 for e in events if e["event"] == "created")
        all_promotions += promotions
        context.log.info(f"{batch}: {len(assignments)} signals assigned, {len(promotions)} reports promoted")
    return dg.MaterializeResult(
        metadata={
            "signals_assigned": assigned,
            "reports_created": created,
            "provider": provider.name,
            PROMOTED_METADATA_KEY: dg.MetadataValue.json(all_promotions),
        }
    )
