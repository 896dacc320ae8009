from itertools import groupby

import dagster as dg

from signals_assets.assets.embeddings import signal_embeddings
from signals_assets.assets.ingest import BATCH_BACKFILL_POLICY
from signals_assets.clickhouse import StoreSession
from signals_assets.grouping import TOP_K, BatchSignal, Candidate, plan_batch
from signals_assets.lifecycle import ReportState
from signals_assets.partitions import batch_time, signal_batches
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.embedder import EmbedderResource

GROUPING_POOL = "signals_grouping"
PROMOTED_METADATA_KEY = "promoted_reports"

_BATCH_SIGNALS = """
SELECT s.team_id AS team_id, s.signal_id AS signal_id, s.description AS description, s.weight AS weight,
       e.embedding AS embedding
FROM signals AS s
INNER JOIN signal_embeddings AS e ON e.signal_id = s.signal_id AND e.team_id = s.team_id
WHERE s.batch_key = {batch} AND e.batch_key = {batch} AND e.model = {model}
ORDER BY s.team_id, s.emitted_at, s.signal_id
"""

# Nearest assigned signals of the same team for every probe, in one scan of the embeddings.
_NEAREST = """
WITH {probes} AS probes
SELECT idx AS probe, e.signal_id AS signal_id, a.report_id AS report_id,
       1 - cosineDistance(e.embedding, probes[idx]) AS similarity
FROM signal_embeddings AS e
INNER JOIN (
    SELECT signal_id, report_id FROM report_assignments
    WHERE team_id = {team} AND deleted = 0 AND batch_key != {batch}
) AS a ON a.signal_id = e.signal_id
ARRAY JOIN arrayEnumerate(probes) AS idx
WHERE e.team_id = {team} AND e.model = {model} AND e.batch_key != {batch}
ORDER BY probe, similarity DESC
LIMIT {k} BY probe
"""

_REPORT_STATES = """
SELECT ev.report_id AS report_id, ev.status AS status, ev.signals_at_run AS signals_at_run,
       ev.research_round AS research_round, ifNull(c.signal_count, 0) AS signal_count,
       ifNull(c.total_weight, 0) AS total_weight
FROM (
    SELECT report_id, argMax(status, (at, seq)) AS status, argMax(signals_at_run, (at, seq)) AS signals_at_run,
           max(research_round) AS research_round
    FROM report_events
    WHERE team_id = {team} AND report_id IN {ids} AND NOT (stage = 'grouping' AND source = {batch})
    GROUP BY report_id
) AS ev
LEFT JOIN (
    SELECT report_id, count() AS signal_count, sum(weight) AS total_weight FROM report_assignments
    WHERE team_id = {team} AND report_id IN {ids} AND deleted = 0 AND batch_key != {batch}
    GROUP BY report_id
) AS c ON c.report_id = ev.report_id
SETTINGS join_use_nulls = 1
"""


def _nearest(db: StoreSession, team: int, batch: str, model: str, signals: list[BatchSignal]) -> dict[str, list[Candidate]]:
    rows = db.query(
        _NEAREST,
        {"probes": [list(map(float, s.embedding)) for s in signals], "team": team, "batch": batch, "model": model, "k": TOP_K},
    )
    found: dict[str, list[Candidate]] = {}
    for row in rows:
        signal = signals[row["probe"] - 1]
        found.setdefault(signal.signal_id, []).append(Candidate(row["signal_id"], row["report_id"], row["similarity"]))
    return found


def _report_states(db: StoreSession, team: int, batch: str, report_ids: set[str]) -> dict[str, ReportState]:
    if not report_ids:
        return {}
    rows = db.query(_REPORT_STATES, {"team": team, "batch": batch, "ids": sorted(report_ids)})
    return {
        row["report_id"]: ReportState(
            row["report_id"], row["status"], int(row["signal_count"]), float(row["total_weight"]),
            int(row["signals_at_run"]), int(row["research_round"]),
        )
        for row in rows
    }


def group_batch(db: StoreSession, batch: str, model: str) -> tuple[list[dict], list[dict], list[dict]]:
    """Assignment rows, event rows and promotions for one batch, every team in turn."""
    at = batch_time(batch)
    assignments, events, promotions = [], [], []
    rows = db.query(_BATCH_SIGNALS, {"batch": batch, "model": model})
    for team, team_rows in groupby(rows, key=lambda r: r["team_id"]):
        signals = [BatchSignal(r["signal_id"], team, r["description"], r["weight"], r["embedding"]) for r in team_rows]
        candidates = _nearest(db, team, batch, model, signals)
        states = _report_states(db, team, batch, {c.report_id for found in candidates.values() for c in found})
        plan = plan_batch(signals, candidates, states)
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


@dg.asset(
    partitions_def=signal_batches,
    backfill_policy=BATCH_BACKFILL_POLICY,
    deps=[signal_embeddings],
    pool=GROUPING_POOL,
    group_name="grouping",
    kinds={"clickhouse", "python"},
    description="Which report each signal joins (append-only facts) and the report lifecycle events "
    "it causes; promoted reports are listed in the metadata for report_promotion_sensor.",
)
def report_assignments(
    context: dg.AssetExecutionContext, clickhouse: ClickHouseResource, embedder: EmbedderResource
) -> dg.MaterializeResult:
    all_promotions, assigned, created = [], 0, 0
    # Batches in key order: a later batch must see the reports of the earlier ones.
    for batch in sorted(context.partition_keys):
        with clickhouse.session(log=context.log.info) as db:
            assignments, events, promotions = group_batch(db, batch, embedder.model_name)
            db.replace_partition("report_assignments", "batch_key = {batch}", assignments, {"batch": batch})
            db.replace_partition(
                "report_events", "source = {batch} AND stage = 'grouping'", events, {"batch": batch}
            )
        assigned += len(assignments)
        created += sum(1 for e in events if e["event"] == "created")
        all_promotions += promotions
        context.log.info(f"{batch}: {len(assignments)} signals assigned, {len(promotions)} reports promoted")
    return dg.MaterializeResult(
        metadata={
            "signals_assigned": assigned,
            "reports_created": created,
            PROMOTED_METADATA_KEY: dg.MetadataValue.json(all_promotions),
        }
    )
