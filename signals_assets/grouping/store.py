"""The grouping stage in the signals store: what it reads before a batch is decided, and what it writes.

Everything read for a batch is as of before that batch (assignments of earlier batches, events not
written by this or a later batch's grouping nor, on a re-grouping, for the research rounds those
promoted), so re-grouping a batch sees what the first grouping saw.

Retention of the derived search data. A report's snapshots (`report_vector_snapshots`) are a cache of
its deltas, which are kept: a read takes the latest snapshot before its batch, so one superseded by a
later snapshot that is itself before the earliest batch that may still be grouped is read by nothing
and is deleted after each grouping run (`prune_vector_snapshots`). The cell tables are not pruned:
every search of a larger team scores all of the team's embeddings of earlier batches, searchable or
not, and filters after (dropping the rows of signals out of the window would change which neighbours
a probe fetches, and so decisions; a re-run of an earlier batch has an earlier window); their rows of
an old training are already deleted when the centroids are trained again, and a batch whose
embeddings change (and that keeps some of the team's) has its rows derived again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING

from signals_assets.grouping.consolidation import PoolSignal
from signals_assets.grouping.engine import (
    CONSOLIDATED_STATUSES,
    TOP_K,
    BatchPlan,
    BatchSignal,
    Candidate,
    ReportStats,
    cluster_report_ids,
)
from signals_assets.reports.lifecycle import ReportState
from signals_assets.storage.clickhouse import StoreSession
from signals_assets.storage.facts import current_assignments, latest_report_states, signals_ever_in

if TYPE_CHECKING:
    import numpy

_BATCH_SIGNALS = """
SELECT s.team_id AS team_id, s.signal_id AS signal_id, s.description AS description, s.weight AS weight,
       e.embedding AS embedding
FROM signals AS s
INNER JOIN signal_embeddings AS e ON e.signal_id = s.signal_id AND e.team_id = s.team_id
WHERE s.batch_key = {batch} AND e.batch_key = {batch} AND e.model = {model}
  AND (length({teams}) = 0 OR has({teams}, s.team_id))
ORDER BY s.team_id, s.emitted_at, s.signal_id
"""

_BEFORE_BATCH = current_assignments("team_id = {team} AND batch_key < {batch}")

# The team's embeddings from batches before this one: the space every search runs in.
_TEAM_EMBEDDINGS = "e.team_id = {team} AND e.model = {model} AND e.batch_key < {batch}"
_SEARCHABLE = f"SELECT signal_id FROM ({_BEFORE_BATCH}) WHERE deleted = 0 AND first_assigned_at >= {{since}}"

# Exact: the team's searchable embeddings.
_SEARCHABLE_EMBEDDINGS = f"FROM signal_embeddings AS e WHERE {_TEAM_EMBEDDINGS} AND e.signal_id IN ({_SEARCHABLE})"

# Approximate: one probe through the HNSW index, in the query shape it serves. Selecting the distance
# that orders the rows returns the index's own (bf16: within 2e-4 of the exact cosine, measured)
# without reading the embeddings; asking ClickHouse to rescore reads them and costs about five times
# as much. The searchable filter is applied after (`_FOUND`).
_INDEX_NEAREST = f"""
SELECT e.signal_id AS signal_id, cosineDistance(e.embedding, {{vector}}) AS distance
FROM signal_embeddings AS e
WHERE {_TEAM_EMBEDDINGS}
ORDER BY distance
LIMIT {{k}}
"""
# A probe the searchable filter left short: a scan of the team's searchable signals, without the index.
_FILTERED_NEAREST = f"""
SELECT e.signal_id AS signal_id, cosineDistance(e.embedding, {{vector}}) AS distance
FROM signal_embeddings AS e
WHERE {_TEAM_EMBEDDINGS} AND e.signal_id IN ({_SEARCHABLE})
ORDER BY distance, e.signal_id
LIMIT {{k}}
SETTINGS vector_search_filter_strategy = 'prefilter'
"""
# The index search fetches this many times TOP_K per probe, so that signals the searchable filter
# drops (deleted, outside the window, grouped in no batch before this one) rarely leave a probe short;
# a probe still short is searched again by a scan.
INDEX_FETCH_FACTOR = 2

# Teams with at most this many embeddings before the batch are searched exactly, in numpy over their
# searchable embeddings read once (20,000 x 384 float64: 61 MB). Larger ones are searched through the
# HNSW index when the store has it and the batch has at most INDEX_PROBE_LIMIT probes (one statement
# per probe); otherwise by a cell search that reads only the cells near the probes (`_cell_nearest`;
# measured in benchmarks/README.md, "Grouping at scale").
EXACT_SEARCH_LIMIT = 20_000
INDEX_PROBE_LIMIT = 16
# Cell search (an inverted file): the team's embeddings are clustered by k-means into cells of about
# CELL_ROWS when trained (signal_embedding_centroids), each embedding is stored again under its cell
# (signal_embedding_cell_vectors, as 16-bit fixed point, whose order keeps a cell's rows together),
# and a probe is scored against the rows of its CELL_PROBES nearest cells only (2: recall@10 0.999 at
# 1M, measured). The centroids are trained again once the team has grown RETRAIN_GROWTH times past its
# size at training, so cells stay within a factor of CELL_ROWS.
CELL_ROWS = 250
CELL_PROBES = 2
RETRAIN_GROWTH = 2
_SAMPLE_PER_CELL = 25  # k-means runs on a sample of this many embeddings per cell
_KMEANS_ROUNDS = 6
# Rows read per statement when cells are derived or searched (100,000 x 384 float32: 154 MB).
SCAN_BLOCK_ROWS = 100_000

_TEAM_SIZE = f"SELECT count() FROM signal_embeddings AS e WHERE {_TEAM_EMBEDDINGS}"

# The team's batches before this one with their embedding counts and a hash of their signal ids, in the
# table's order: what the cells were derived from.
_TEAM_BATCHES = f"""
SELECT e.batch_key AS batch_key, count() AS rows, sum(cityHash64(e.signal_id)) AS ids_hash
FROM signal_embeddings AS e WHERE {_TEAM_EMBEDDINGS}
GROUP BY e.batch_key ORDER BY e.batch_key
"""
_TEAM_MODEL = "team_id = {team} AND model = {model}"
_TRAINED_ROWS = f"SELECT any(trained_rows) AS trained_rows FROM signal_embedding_centroids WHERE {_TEAM_MODEL}"
_CENTROIDS = f"SELECT centroid FROM signal_embedding_centroids WHERE {_TEAM_MODEL} ORDER BY cell"
# The k-means sample: every `every`-th embedding by a hash of its id, the same on every run.
_SAMPLE = f"""
SELECT e.embedding FROM signal_embeddings AS e WHERE {_TEAM_EMBEDDINGS} AND cityHash64(e.signal_id) % {{every}} = 0
ORDER BY e.signal_id
"""
# Retraining forgets every cell first, the markers before the rows they vouch for.
_FORGET_CELLS = (
    f"DELETE FROM signal_embedding_cell_vector_batches WHERE {_TEAM_MODEL}",
    f"DELETE FROM signal_embedding_cell_vectors WHERE {_TEAM_MODEL}",
    f"DELETE FROM signal_embedding_centroids WHERE {_TEAM_MODEL}",
)
_CELL_BATCHES = (
    "SELECT batch_key, trained_rows, ids_hash FROM signal_embedding_cell_vector_batches "
    f"WHERE {_TEAM_MODEL} AND batch_key < {{batch}}"
)
# Some of the team's batches (`keys`) read for deriving their cells, in the table's order so that the
# ids and the vectors, read by two statements, line up.
_BATCHES_BLOCK = f"""
FROM signal_embeddings AS e WHERE {_TEAM_EMBEDDINGS} AND e.batch_key IN {{keys}}
ORDER BY e.batch_key, e.signal_id
"""
# A unit vector's components as 16-bit fixed point: half the bytes of float32 to read back (the read's
# cost is mostly its bytes), and cosines within 5e-5 of the exact ones (384 dimensions, measured);
# bfloat16, the same size, keeps 8 significant bits, about 7 times the error on such components.
FIXED_POINT = 32767
# The searched cells' rows of batches before this one: their sizes and longest ids (in bytes), then
# some of them, each row's vector, cell and id in one binary result (unordered: grouped by cell in
# numpy), the ids padded to the longest (`{width}`) with zero bytes, which no signal id holds.
_CELLS_OF = f"FROM signal_embedding_cell_vectors WHERE {_TEAM_MODEL} AND batch_key < {{batch}} AND cell IN {{cells}}"
_CELL_SIZES = f"SELECT cell, count() AS rows, max(length(signal_id)) AS longest {_CELLS_OF} GROUP BY cell ORDER BY cell"
_CELL_ROWS = f"SELECT vector, cell, toFixedString(signal_id, {{width}}) {_CELLS_OF}"

_FOUND_ASSIGNMENTS = current_assignments("team_id = {team} AND batch_key < {batch} AND signal_id IN {ids}")
# The current report of the found signals that are searchable.
_FOUND = f"SELECT signal_id, report_id FROM ({_FOUND_ASSIGNMENTS}) WHERE deleted = 0 AND first_assigned_at >= {{since}}"

# The reports as of before the batch: without the events of this or a later batch's grouping and, when
# the batch is grouped again (it has assignments: a backfill, `signals regroup`), without the summary and
# research events of the rounds those promoted, which came after its first grouping (read, a report
# researched in the round this batch promoted would be `ready` in it, and promoted into the next one).
# A first grouping reads them all: a batch unparked after later batches were grouped joins the reports
# as their research left them, so its signals start a round after the researched ones.
_ROUNDS_FROM_BATCH = (
    "SELECT report_id, research_round FROM report_events "
    "WHERE team_id = {team} AND stage = 'grouping' AND event = 'promoted' AND source >= {batch}"
)
_BATCH_SIGNAL_IDS = "SELECT signal_id FROM report_assignments WHERE team_id = {team} AND batch_key = {batch}"
_GROUPED_BEFORE = f"(SELECT count() FROM ({_BATCH_SIGNAL_IDS})) > 0"
_LATEST_EVENTS = latest_report_states(
    "team_id = {team} AND NOT (stage = 'grouping' AND source >= {batch}) AND NOT (stage != 'grouping' "
    f"AND {_GROUPED_BEFORE} AND (report_id, research_round) IN ({_ROUNDS_FROM_BATCH}))"
)

# The team's signals that were ever in one of the reports `{ids}` (before the batch), and their current
# assignments: the aggregation runs over these signals only, not over the whole team.
_IN_REPORTS = signals_ever_in("team_id = {team} AND batch_key < {batch}", "{ids}")
_BEFORE_BATCH_IN_REPORTS = current_assignments(
    f"team_id = {{team}} AND batch_key < {{batch}} AND signal_id IN ({_IN_REPORTS})"
)

# A report as of before the batch: its latest snapshot of an earlier batch (report_vector_snapshots.sql)
# plus its vector deltas of the batches after that snapshot and before this one (report_vector_deltas.sql).
_SNAPSHOT_KEYS = """
SELECT report_id, max(batch_key) AS snapshot_key FROM report_vector_snapshots
WHERE team_id = {team} AND model = {model} AND batch_key < {batch} AND report_id IN {ids}
GROUP BY report_id
"""
_SNAPSHOT_OF = (
    "transform(report_id, CAST({snapshot_reports} AS Array(String)), CAST({snapshot_keys} AS Array(String)), '')"
)
# `{floor}`, the earliest snapshot key of the reports (or '' when one has none), lets the primary key
# skip the older deltas of long-lived reports; the per-report bound is exact.
_REPORT_PARTS = f"""
SELECT report_id, batch_key, signal_count, first_batch_keys, weights{{vector}}
FROM report_vector_snapshots
WHERE team_id = {{team}} AND model = {{model}} AND report_id IN {{ids}} AND batch_key = {_SNAPSHOT_OF}
UNION ALL
SELECT report_id, batch_key, signal_count, [first_batch_key], [weight]{{vector}}
FROM report_vector_deltas
WHERE team_id = {{team}} AND model = {{model}} AND report_id IN {{ids}} AND batch_key < {{batch}}
  AND batch_key > {{floor}} AND batch_key > {_SNAPSHOT_OF}
"""
# Size and weight of every report concerned (candidates and pooled), without reading vectors. The weight
# counts only signals first grouped after the report's latest weight reset (see reports.sql); rounded
# because leaving and rejoining signals add and subtract it.
_REPORT_STATES = f"""
SELECT ev.report_id AS report_id, ev.status AS status, ev.signals_at_run AS signals_at_run,
       ev.research_round AS research_round, ev.title AS title, d.signal_count AS signal_count,
       round(arraySum(arrayFilter((w, b) -> b > ev.weight_after_batch, d.weights, d.first_batch_keys)), 9)
           AS total_weight
FROM ({_LATEST_EVENTS}) AS ev
INNER JOIN (
    SELECT report_id, sum(signal_count) AS signal_count, groupArrayArray(weights) AS weights,
           groupArrayArray(first_batch_keys) AS first_batch_keys  -- sumMap costs 30 times as much here
    FROM ({_REPORT_PARTS.replace("{vector}", "")})
    GROUP BY report_id
) AS d ON d.report_id = ev.report_id
WHERE ev.report_id IN {{ids}} AND d.signal_count > 0
"""
# The vector sums of the candidate reports only (the one-pass decisions read them; the consolidation
# does not), with what a snapshot of each needs: its parts summed and the latest batch among them.
_REPORT_VECTORS = f"""
SELECT report_id, sum(signal_count) AS signal_count, sumMap(first_batch_keys, weights) AS weights,
       sumForEach(vector_sum) AS vector_sum, count() AS parts, max(batch_key) AS last_key
FROM ({_REPORT_PARTS.replace("{vector}", ", vector_sum")})
GROUP BY report_id
"""
# A report read with more parts than this (its snapshot and its deltas after it) gets a new snapshot.
FOLD_PARTS = 8

_TEXTS = f"""
SELECT a.report_id AS report_id, s.signal_id AS signal_id, s.description AS description
FROM ({_BEFORE_BATCH_IN_REPORTS}) AS a
INNER JOIN (  -- filtered here: the join's table side is read whole, every team's signals, when it is not
    SELECT signal_id, description FROM signals WHERE team_id = {{team}} AND signal_id IN ({_IN_REPORTS})
) AS s ON s.signal_id = a.signal_id
WHERE a.report_id IN {{ids}} AND a.deleted = 0
ORDER BY a.report_id, a.first_position
LIMIT 8 BY a.report_id
"""

# The pooled reports: research not started or finished (CONSOLIDATED_STATUSES, never in flight), so
# consolidation may reshape them.
_POOLED_REPORTS = f"SELECT report_id FROM ({_LATEST_EVENTS}) WHERE status IN {{pooled}}"
# The research rounds the reports `{ids}` (the ids a consolidation cluster may get) were promoted to by
# the batches before this one. Rounds promoted later, such as this batch's own on a re-run, are not
# past: counting them would research a re-run's promotions again under a new round.
_PAST_ROUNDS = """
SELECT report_id, max(research_round) AS past_round FROM report_events
WHERE team_id = {team} AND report_id IN {ids} AND stage = 'grouping' AND source < {batch}
GROUP BY report_id HAVING past_round > 0
"""
# The batches before this one with an assignment in the window, newest first, and their sizes: how far
# back the pool must look (`_pool_rows`).
_POOL_BATCHES = """
SELECT batch_key, count() AS rows FROM report_assignments
WHERE team_id = {team} AND batch_key < {batch}
GROUP BY batch_key HAVING max(assigned_at) >= {since}
ORDER BY batch_key DESC
"""
# Current assignments of the team's signals assigned in a batch from `{first}` on (before this one).
_RECENT_ASSIGNMENTS = current_assignments(
    "team_id = {team} AND batch_key < {batch} AND signal_id IN "
    "(SELECT signal_id FROM report_assignments WHERE team_id = {team} AND batch_key >= {first} AND batch_key < {batch})"
)
# The pool for consolidation: live signals of the pooled reports `{ids}` first grouped in a batch from
# `{first}` on, newest `limit` within the window (returned newest first). Texts and embeddings are
# read for these only.
_POOL = f"""
SELECT a.signal_id AS signal_id, a.report_id AS report_id,
       if(a.first_batch_key > ev.weight_after_batch, a.weight, 0) AS weight  -- as counted in the report's weight
FROM ({_RECENT_ASSIGNMENTS}) AS a
INNER JOIN ({_LATEST_EVENTS}) AS ev ON ev.report_id = a.report_id
WHERE a.deleted = 0 AND a.first_assigned_at >= {{since}} AND a.report_id IN {{ids}} AND a.first_batch_key >= {{first}}
ORDER BY a.first_position DESC
LIMIT {{limit}}
"""
_POOL_TEXTS = "SELECT signal_id, description FROM signals WHERE team_id = {team} AND signal_id IN {ids}"
_POOL_EMBEDDINGS = "FROM signal_embeddings AS e WHERE e.team_id = {team} AND e.model = {model} AND e.signal_id IN {ids}"


def batch_signals(db: StoreSession, batch: str, model: str, teams: list[int]) -> dict[int, list[BatchSignal]]:
    """The batch's embedded signals by team (all teams when `teams` is empty), in emit order."""
    rows = db.query(_BATCH_SIGNALS, {"batch": batch, "model": model, "teams": teams})
    return {
        team: [BatchSignal(r["signal_id"], team, r["description"], r["weight"], r["embedding"]) for r in rows]
        for team, rows in groupby(rows, key=lambda r: r["team_id"])
    }


@dataclass
class TeamContext:
    """What the store says before one team's part of a batch is decided."""

    signals: list[BatchSignal]
    candidates: dict[str, list[Candidate]]
    stats: dict[str, ReportStats] = field(default_factory=dict)
    states: dict[str, ReportState] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    open_pool: list[PoolSignal] = field(default_factory=list)  # oldest first; read only when consolidating
    # research rounds of the reports a consolidation cluster may be named after (engine.consolidate)
    past_rounds: dict[str, int] = field(default_factory=dict)


def read_team(
    db: StoreSession,
    team: int,
    batch: str,
    model: str,
    since,
    signals: list[BatchSignal],
    with_texts: bool,
    pool_limit: int = 0,
) -> TeamContext:
    """The nearest assigned signals of every probe of the team's batch signals, the states and statistics
    of their reports, their texts (`with_texts`) and the consolidation pool (`pool_limit` newest
    signals of open and researched reports)."""
    probes = [(s, p) for s in signals for p in (s.embedding, *s.probes)]
    searched: dict = {}  # the embeddings the exact search read: the pool's are among them
    nearest = nearest_signals(db, team, batch, model, since, [p for _, p in probes], searched)
    context = TeamContext(signals, {})
    probe_numbers = [i for s in signals for i in range(1 + len(s.probes))]
    for (signal, _), number, found in zip(probes, probe_numbers, nearest):
        if found:
            context.candidates.setdefault(signal.signal_id, []).extend(
                Candidate(signal_id, report_id, similarity, number) for signal_id, report_id, similarity in found
            )
    if pool_limit:
        params = {
            "team": team,
            "batch": batch,
            "since": since,
            "pooled": list(CONSOLIDATED_STATUSES),
            "limit": pool_limit,
        }
        pooled_reports = [r["report_id"] for r in db.query(_POOLED_REPORTS, params)]
        rows = _pool_rows(db, {**params, "ids": pooled_reports}) if pooled_reports else []
        pool_ids = {"team": team, "model": model, "ids": [r["signal_id"] for r in rows]}
        texts = {r["signal_id"]: r["description"] for r in db.query(_POOL_TEXTS, pool_ids)} if rows else {}
        embedding_of = searched
        missing = sorted({i for i in pool_ids["ids"] if i not in searched})
        if missing:  # the approximate search reads no embeddings
            embedding_of.update(zip(*embeddings(db, _POOL_EMBEDDINGS, {**pool_ids, "ids": missing})))
        context.open_pool = [
            PoolSignal(
                r["signal_id"], r["report_id"], embedding_of[r["signal_id"]], float(r["weight"]), texts[r["signal_id"]]
            )
            for r in reversed(rows)
        ]
        seeds = [p.signal_id for p in context.open_pool] + [s.signal_id for s in signals]
        named = sorted({report_id for seed in seeds for report_id in cluster_report_ids(team, seed)})
        context.past_rounds = {
            r["report_id"]: int(r["past_round"])
            for r in db.query(_PAST_ROUNDS, {"team": team, "batch": batch, "ids": named})
        }
    candidates = sorted({c.report_id for found in context.candidates.values() for c in found})
    ids = sorted(set(candidates) | {p.report_id for p in context.open_pool})
    if not ids:
        return context
    params = {"team": team, "batch": batch, "ids": ids, "model": model}
    snapshots = {r["report_id"]: r["snapshot_key"] for r in db.query(_SNAPSHOT_KEYS, params)}
    titles = {}
    # Reports whose signals are all deleted (or newer than this batch) are no candidates.
    for row in db.query(_REPORT_STATES, _with_snapshots(params, snapshots)):
        titles[row["report_id"]] = row["title"]
        context.states[row["report_id"]] = ReportState(
            row["report_id"],
            row["status"],
            int(row["signal_count"]),
            float(row["total_weight"]),
            int(row["signals_at_run"]),
            int(row["research_round"]),
        )
    candidates = [r for r in candidates if r in context.states]
    if not candidates:
        return context
    params["ids"] = candidates
    examples: dict[str, list[str]] = {}
    if with_texts:
        for row in db.query(_TEXTS, params):
            examples.setdefault(row["report_id"], []).append(row["description"])
            context.texts[row["signal_id"]] = row["description"]
    vectors = db.query(_REPORT_VECTORS, _with_snapshots(params, snapshots))
    for row in vectors:
        context.stats[row["report_id"]] = ReportStats(
            row["vector_sum"],
            int(row["signal_count"]),
            titles[row["report_id"]],
            examples.get(row["report_id"], []),
        )
    _fold(db, team, model, [row for row in vectors if row["parts"] > FOLD_PARTS])
    return context


def _with_snapshots(params: dict, snapshots: dict[str, str]) -> dict:
    """The statistics' parameters for the reports `params["ids"]` with their latest snapshots."""
    keys = [snapshots.get(r, "") for r in params["ids"]]
    return {
        **params,
        "snapshot_reports": list(snapshots),
        "snapshot_keys": list(snapshots.values()),
        "floor": min(keys, default=""),
    }


def _fold(db: StoreSession, team: int, model: str, reports: list[dict]) -> None:
    """Write each report's statistics as read (its parts summed) as its snapshot at the latest batch among
    them: the next read sums this row and the deltas after it. The sums are those of float32 embeddings
    in float64, so the order they are added in does not change them."""
    db.insert(
        "report_vector_snapshots",
        [
            {
                "team_id": team,
                "report_id": r["report_id"],
                "model": model,
                "batch_key": r["last_key"],
                "signal_count": int(r["signal_count"]),
                "first_batch_keys": r["weights"][0],
                "weights": r["weights"][1],
                "vector_sum": r["vector_sum"],
            }
            for r in reports
        ],
    )


# Snapshots no read of a batch from `{floor}` on takes: a read takes a report's latest snapshot before
# its batch, and each of these has a later one of the same report that is still before `{floor}`.
_SUPERSEDED_SNAPSHOTS = """
batch_key < {floor} AND (team_id, report_id, model, batch_key) NOT IN (
    SELECT team_id, report_id, model, max(batch_key) FROM report_vector_snapshots
    WHERE batch_key < {floor} GROUP BY team_id, report_id, model
)
"""


def prune_vector_snapshots(db: StoreSession, floor: str) -> None:
    """Delete the snapshots that no grouping of a batch from `floor` on can read (`floor`: the earliest
    batch that may still be grouped, or grouped again). One statement, deleting only superseded rows
    (and run only when one exists: `delete_where` counts first), so running it again or a kill part-way
    leaves every report its latest snapshot before `floor`. A batch before `floor` grouped all the same
    (`signals regroup` re-adds retired partitions) reads an earlier snapshot and more deltas: the same
    sums, as every re-grouping after a fold already reads (sums of float32 embeddings in float64 do not
    depend on their order), only slower, once."""
    db.delete_where("report_vector_snapshots", _SUPERSEDED_SNAPSHOTS, {"floor": floor})


def _pool_rows(db: StoreSession, params: dict) -> list[dict]:
    """The `_POOL` rows, reading only the latest batches that can hold them: from the newest batches with
    twice the pool limit's assignments, further back (four times as many) while the pool is short of its
    limit and older batches remain. Signals first grouped in those batches come before all older ones in
    the pool's order, so the rows are those of a read of every batch."""
    batches = db.query(_POOL_BATCHES, params)
    wanted = 2 * params["limit"]
    while batches:
        covered, first = 0, batches[-1]["batch_key"]
        for b in batches:
            covered += int(b["rows"])
            if covered >= wanted:
                first = b["batch_key"]
                break
        rows = db.query(_POOL, {**params, "first": first})
        if len(rows) >= params["limit"] or first == batches[-1]["batch_key"]:
            return rows
        wanted *= 4
    return []


def nearest_signals(
    db: StoreSession, team: int, batch: str, model: str, since, probes: list, read: dict | None = None
) -> list[list]:
    """Per probe, its TOP_K nearest searchable signals of the team as (signal id, report id, cosine
    similarity), nearest first (ties by signal id). Searchable are the signals assigned before `batch`,
    not deleted, first assigned at or after `since`. Teams of up to EXACT_SEARCH_LIMIT stored embeddings
    are searched exactly among their searchable signals; larger ones fetch TOP_K x INDEX_FETCH_FACTOR
    neighbours among all their embeddings (through the HNSW index, or by the cell search), the
    searchable filter is applied after, and a probe it leaves short is searched again by a scan.
    `read`, when given, receives the embeddings the exact search read (signal id to float32 row)."""
    if not probes:
        return []
    params = {"team": team, "batch": batch, "model": model, "since": since}
    approximate = searched_approximately(db, params)
    if not approximate:
        found = _exact_nearest(db, params, probes, read)
    elif len(probes) <= INDEX_PROBE_LIMIT and db.vector_index_type() is not None:
        found = _index_nearest(db, params, probes)
    else:
        found = _cell_nearest(db, params, probes)
    nearest = _with_reports(db, params, found)
    short = [i for i, rows in enumerate(nearest) if len(rows) < TOP_K and len(found[i]) > len(rows)]
    if approximate and short:
        again = _with_reports(db, params, _filtered_nearest(db, params, [probes[i] for i in short]))
        for i, rows in zip(short, again):
            nearest[i] = rows
    return nearest


def searched_approximately(db: StoreSession, params: dict) -> bool:
    """Whether the team's candidate search is approximate (index or cells): it holds more than
    EXACT_SEARCH_LIMIT embeddings before the batch."""
    return db.scalar(_TEAM_SIZE, params) > EXACT_SEARCH_LIMIT


def _with_reports(db: StoreSession, params: dict, found: list[list]) -> list[list]:
    """The found (signal id, similarity) lists with each searchable signal's report, unsearchable ones
    dropped, at most TOP_K per probe."""
    ids = sorted({signal_id for rows in found for signal_id, _ in rows})
    report_of = {r["signal_id"]: r["report_id"] for r in db.query(_FOUND, {**params, "ids": ids})} if ids else {}
    return [[(s, report_of[s], similarity) for s, similarity in rows if s in report_of][:TOP_K] for rows in found]


def embeddings(db: StoreSession, source: str, params: dict) -> tuple[list[str], numpy.ndarray]:
    """Signal ids and their embeddings (float32 rows, read as binary) of `source`, a FROM … WHERE clause
    over `signal_embeddings AS e`; ordered by signal id so that the two reads line up."""
    ids = [
        row["signal_id"] for row in db.query(f"SELECT e.signal_id AS signal_id {source} ORDER BY e.signal_id", params)
    ]
    return ids, db.vectors(f"SELECT e.embedding {source} ORDER BY e.signal_id", params)


def _exact_nearest(db: StoreSession, params: dict, probes: list, read: dict | None = None) -> list[list]:
    """Per probe, the TOP_K most similar searchable signals: numpy over the team's embeddings, read once
    (and left in `read`)."""
    import numpy as np

    ids, vectors = embeddings(db, _SEARCHABLE_EMBEDDINGS, params)
    if read is not None:
        read.update(zip(ids, vectors))
    if not ids:
        return [[] for _ in probes]
    vectors = vectors.astype(np.float64)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-300)
    nearest = []
    for start in range(0, len(probes), 64):  # bounded score blocks: 64 probes x team size
        block = np.asarray(probes[start : start + 64], dtype=np.float64)
        block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-300)
        for scores in block @ vectors.T:
            nearest.append([(ids[i], float(scores[i])) for i in _top_indices(scores, TOP_K)])
    return nearest


def _top_indices(scores, k: int) -> list[int]:
    """The indices of the k highest scores, highest first, ties to the lower index (ids are sorted)."""
    import numpy as np

    if len(scores) > k:
        threshold = np.partition(scores, len(scores) - k)[len(scores) - k]
        candidates = np.flatnonzero(scores >= threshold)  # every tie at the threshold
    else:
        candidates = np.arange(len(scores))
    return candidates[np.argsort(-scores[candidates], kind="stable")][:k].tolist()


def _cell_nearest(db: StoreSession, params: dict, probes: list) -> list[list]:
    """Per probe, the TOP_K x INDEX_FETCH_FACTOR most similar embeddings of the team (searchable or not)
    among the rows of its CELL_PROBES nearest cells, scored in float32 against their fixed-point copies.
    Only the chosen cells are read, a block of cells at a time (memory is bounded by the block), and
    each cell's rows are scored against the probes that chose it only."""
    import numpy as np

    k = TOP_K * INDEX_FETCH_FACTOR
    centroids = _team_cells(db, params)
    matrix = _normalised(np.asarray(probes, dtype=np.float32))
    probes_of: dict[int, list[int]] = {}
    for probe, cells in enumerate(_nearest_cells(matrix, centroids, CELL_PROBES).tolist()):
        for cell in cells:
            probes_of.setdefault(cell, []).append(probe)
    sizes = db.query(_CELL_SIZES, {**params, "cells": sorted(probes_of)})
    longest = {int(r["cell"]): int(r["longest"]) for r in sizes}
    scaled = matrix / FIXED_POINT  # scored against the fixed-point rows as read: no float copy of them
    read: list = []  # per block, the ids (UTF-8 bytes) of its rows: every row read, numbered in read order
    count = 0
    found: list[list] = [[] for _ in probes]  # per probe, (scores, row numbers) of its best in each cell
    for block in _blocks([(int(r["cell"]), int(r["rows"])) for r in sizes]):
        width = max(longest[cell] for cell in block)
        fixed, row_cells, labels = db.labelled_vectors(_CELL_ROWS, {**params, "cells": block, "width": width})
        # a cell's rows together, by id: the read's order varies, and float32 scores with it in the last bit
        order = np.lexsort((labels, row_cells))  # UTF-8 bytes sort as their characters do
        numbers = count + order  # the rows' numbers in read order
        bounds = np.searchsorted(row_cells[order], block + [block[-1] + 1])
        read.append(labels)
        count += len(labels)
        for cell, first, last in zip(block, bounds[:-1].tolist(), bounds[1:].tolist()):
            chosen_by = probes_of[cell]
            # one cell's rows as float32 at a time: converting the whole block took 4 times as long (a
            # fresh 150 MB array's pages) and held that much more memory
            scores = scaled[chosen_by] @ fixed[order[first:last]].astype(np.float32).T
            rows = np.broadcast_to(numbers[first:last], scores.shape)
            for probe, best in zip(chosen_by, zip(*_best_per_row(scores, rows, k))):
                found[probe].append(best)
    ids = np.concatenate(read) if read else np.zeros(0, dtype="S1")
    nearest = []
    for parts in found:
        scores, rows = (np.concatenate(part)[None] for part in zip(*parts)) if parts else (np.zeros((1, 0)),) * 2
        scores, rows = _best_per_row(scores, rows, k)
        nearest.append(
            sorted(
                ((bytes(ids[r]).decode(), float(x)) for r, x in zip(rows[0], scores[0])), key=lambda f: (-f[1], f[0])
            )
        )
    return nearest


_CELL_ROWS_OF_KEYS = f"FROM signal_embedding_cell_vectors WHERE {_TEAM_MODEL} AND batch_key IN {{keys}}"


def _team_cells(db: StoreSession, params: dict):
    """The team's cell centroids, after deriving the cells of every batch before this one that lack them
    or whose cells are stale (other centroids, other signals); the centroids are trained first when
    the team has none or has outgrown them. Every step may be repeated after a kill: a batch counts
    as derived only once its marker row, written last, matches."""
    import numpy as np

    team_model = {"team_id": params["team"], "model": params["model"]}
    batches = db.query(_TEAM_BATCHES, params)
    team_rows = sum(int(b["rows"]) for b in batches)
    trained = int(db.scalar(_TRAINED_ROWS, params) or 0)
    if not trained or team_rows > RETRAIN_GROWTH * trained:
        for statement in _FORGET_CELLS:
            db.command(statement, params)
        centroids = _train_centroids(db, params, team_rows)
        db.insert_binary(
            "signal_embedding_centroids",
            [
                {**team_model, "trained_rows": team_rows, "cell": cell, "centroid": c}
                for cell, c in enumerate(centroids)
            ],
        )
        trained = team_rows
    else:
        centroids = db.vectors(_CENTROIDS, params)
    marked = {r["batch_key"]: (int(r["trained_rows"]), int(r["ids_hash"])) for r in db.query(_CELL_BATCHES, params)}
    stale = [
        (b["batch_key"], int(b["rows"])) for b in batches if marked.get(b["batch_key"]) != (trained, int(b["ids_hash"]))
    ]
    for keys in _blocks(stale):
        block = {**params, "keys": keys}
        keys = set(keys)
        db.command(
            f"DELETE FROM signal_embedding_cell_vector_batches WHERE {_TEAM_MODEL} AND batch_key IN {{keys}}", block
        )
        # Only batches with rows (derived before, or by an attempt killed before its marker): a DELETE is a
        # mutation of the whole table even when it matches nothing (1.0 s at 1M rows).
        derived = db.query(f"SELECT DISTINCT batch_key {_CELL_ROWS_OF_KEYS}", block)
        if derived:
            db.command(f"DELETE {_CELL_ROWS_OF_KEYS}", {**block, "keys": [r["batch_key"] for r in derived]})
        rows = db.query(f"SELECT e.batch_key AS batch_key, e.signal_id AS signal_id {_BATCHES_BLOCK}", block)
        unit = _normalised(db.vectors(f"SELECT e.embedding {_BATCHES_BLOCK}", block))
        cells = _nearest_cells(unit, centroids, 1)[:, 0].tolist()
        # written from the vectors just read, as binary: joining them back to the embeddings in SQL took
        # twice as long (20.7 s against 11.2 s of a 1M-row derivation, quiet)
        db.insert_binary(
            "signal_embedding_cell_vectors",
            [
                {**team_model, "cell": cell, "batch_key": r["batch_key"], "signal_id": r["signal_id"], "vector": v}
                for r, cell, v in zip(rows, cells, np.rint(unit * FIXED_POINT).astype(np.int16))
            ],
        )
        db.insert(
            "signal_embedding_cell_vector_batches",
            [
                {**team_model, "batch_key": b["batch_key"], "trained_rows": trained, "ids_hash": int(b["ids_hash"])}
                for b in batches
                if b["batch_key"] in keys
            ],
        )
    return np.asarray(centroids, dtype=np.float32)


def _train_centroids(db: StoreSession, params: dict, team_rows: int):
    """Spherical k-means over a fixed sample of the team's embeddings: about team_rows / CELL_ROWS unit
    centroids, deterministic for the same embeddings."""
    import numpy as np

    cells = max(1, team_rows // CELL_ROWS)
    every = max(1, team_rows // (cells * _SAMPLE_PER_CELL))
    sample = _normalised(db.vectors(_SAMPLE, {**params, "every": every}))
    cells = min(cells, len(sample))
    centroids = sample[np.linspace(0, len(sample) - 1, cells).astype(int)].copy()
    for _ in range(_KMEANS_ROUNDS):
        assigned = _nearest_cells(sample, centroids, 1)[:, 0]
        order = np.argsort(assigned, kind="stable")
        members, starts = np.unique(assigned[order], return_index=True)
        centroids[members] = _normalised(np.add.reduceat(sample[order], starts, axis=0))
    return centroids


def _nearest_cells(vectors, centroids, n: int):
    """Each unit vector's n nearest centroids (their row numbers), scored 8,192 vectors at a time."""
    import numpy as np

    n = min(n, len(centroids))
    nearest = np.empty((len(vectors), n), dtype=np.int64)
    for start in range(0, len(vectors), 8192):
        scores = vectors[start : start + 8192] @ centroids.T
        nearest[start : start + 8192] = (
            scores.argmax(axis=1)[:, None] if n == 1 else np.argpartition(-scores, n - 1, axis=1)[:, :n]
        )
    return nearest


def _normalised(vectors):
    import numpy as np

    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-30)
    return vectors


def _best_per_row(scores, ids, k: int):
    """Each row's k highest scores (in no order) with their ids; the whole row when it has at most k."""
    import numpy as np

    if scores.shape[1] <= k:
        return scores, ids
    keep = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return np.take_along_axis(scores, keep, axis=1), np.take_along_axis(ids, keep, axis=1)


def _blocks(sizes: list[tuple]) -> list[list]:
    """Consecutive (key, rows) grouped into lists of keys of at most SCAN_BLOCK_ROWS rows together (a
    larger one is a block of its own)."""
    blocks: list[list] = []
    rows = 0
    for key, size in sizes:
        if blocks and rows + size <= SCAN_BLOCK_ROWS:
            blocks[-1].append(key)
            rows += size
        else:
            blocks.append([key])
            rows = size
    return blocks


def _index_nearest(db: StoreSession, params: dict, probes: list) -> list[list]:
    """Per probe, TOP_K x INDEX_FETCH_FACTOR nearest embeddings of the team from the HNSW index."""
    return _nearest_by_query(db, _INDEX_NEAREST, params, probes, TOP_K * INDEX_FETCH_FACTOR)


def _filtered_nearest(db: StoreSession, params: dict, probes: list) -> list[list]:
    return _nearest_by_query(db, _FILTERED_NEAREST, params, probes, TOP_K)


def _nearest_by_query(db: StoreSession, template: str, params: dict, probes: list, k: int) -> list[list]:
    """Run the one-probe query `template` for every probe, one statement each: 10 probes in one UNION ALL
    measured 5 times slower than 10 statements."""
    nearest = []
    for probe in probes:
        rows = db.query(template, {**params, "vector": list(map(float, probe)), "k": k})
        nearest.append(
            [(r["signal_id"], 1.0 - r["distance"]) for r in sorted(rows, key=lambda r: (r["distance"], r["signal_id"]))]
        )
    return nearest


def batch_rows(batch: str, at, plans: dict[int, BatchPlan]) -> tuple[list[dict], list[dict], list[dict]]:
    """The `report_assignments` and `report_events` rows of each team's plan, and its promotions."""
    assignments, events, promotions = [], [], []
    for team, plan in plans.items():
        for a in plan.assignments:
            assignments.append(
                {
                    "team_id": team,
                    "signal_id": a.signal_id,
                    "batch_key": batch,
                    "seq": len(assignments),
                    "report_id": a.report_id,
                    "decision": a.decision,
                    "matched_signal_id": a.matched_signal_id,
                    "similarity": a.similarity,
                    "weight": a.weight,
                    "deleted": int(a.deleted),
                    "assigned_at": at,
                }
            )
        for e in plan.events:
            events.append(
                {
                    "team_id": team,
                    "report_id": e.report_id,
                    "source": batch,
                    "stage": "grouping",
                    "seq": len(events),
                    "event": e.event,
                    "status": e.status,
                    "title": e.title,
                    "summary": e.summary,
                    "signals_at_run": e.signals_at_run,
                    "research_round": e.research_round,
                    "detail": e.detail,
                    "at": at,
                }
            )
        promotions += [{"report_id": e.report_id, "team_id": team, "round": e.research_round} for e in plan.promotions]
    return assignments, events, promotions


_TEAM_FILTER = "(length({teams}) = 0 OR has({teams}, team_id))"
_BATCH_ASSIGNMENTS = (
    f"SELECT signal_id, report_id, deleted FROM report_assignments WHERE batch_key = {{batch}} AND {_TEAM_FILTER}"
)
_DERIVED_TEAMS = f"SELECT DISTINCT team_id FROM report_vector_batches WHERE batch_key = {{batch}} AND {_TEAM_FILTER}"
_LATER_BATCHES = (
    f"SELECT DISTINCT batch_key FROM report_assignments WHERE batch_key > {{last}} AND {_TEAM_FILTER} "
    "ORDER BY batch_key LIMIT 3"
)
# What the report stages wrote for a report, dropped when a re-grouping changes its members.
_FORGET_REPORT_STAGES = (
    "DELETE FROM report_events WHERE report_id IN {ids} AND stage != 'grouping'",
    "DELETE FROM report_summaries WHERE report_id IN {ids}",
    "DELETE FROM research_results WHERE report_id IN {ids}",
)


class RegroupingConflict(Exception):
    """A re-grouping would change reports that later batches were grouped against."""


def write_batch(db: StoreSession, batch: str, teams: list[int], assignments, events, last_key: str) -> None:
    """Replace the batch's grouping facts; refuse a changed re-grouping that later batches built on.

    A report whose members changed loses what the report stages wrote for it (summary, research,
    their events): it is promoted and researched again as the new grouping says."""
    params = {"batch": batch, "teams": teams, "last": last_key}
    before = {(r["signal_id"], r["report_id"], r["deleted"]) for r in db.query(_BATCH_ASSIGNMENTS, params)}
    after = {(a["signal_id"], a["report_id"], a["deleted"]) for a in assignments}
    later = db.query(_LATER_BATCHES, params)
    if before and before != after and later:
        raise RegroupingConflict(
            f"re-grouping {batch} changes its reports, and later batches ({', '.join(r['batch_key'] for r in later)}…) "
            "were grouped against the old ones: re-run the range up to the last batch in one run, or "
            "`signals regroup --team-id N`"
        )
    derived_teams = {r["team_id"] for r in db.query(_DERIVED_TEAMS, params)}
    db.replace_partition("report_assignments", f"batch_key = {{batch}} AND {_TEAM_FILTER}", assignments, params)
    for team in sorted(derived_teams | {a["team_id"] for a in assignments}):
        derive_vector_deltas(db, team, batch)
        if before != after:  # later batches' deltas were derived from the old assignments
            db.delete_where(
                "report_vector_batches", "team_id = {team} AND batch_key > {batch}", {**params, "team": team}
            )
    db.replace_partition(
        "report_events", f"source = {{batch}} AND stage = 'grouping' AND {_TEAM_FILTER}", events, params
    )
    changed = sorted({report for _, report, _ in before ^ after}) if before else []
    if changed:
        for statement in _FORGET_REPORT_STAGES:
            db.command(statement, {"ids": changed})


# The current assignments of one batch's signals as of after the batch and as of before it.
_AFTER = current_assignments(f"team_id = {{team}} AND batch_key <= {{batch}} AND signal_id IN ({_BATCH_SIGNAL_IDS})")
_BEFORE = current_assignments(f"team_id = {{team}} AND batch_key < {{batch}} AND signal_id IN ({_BATCH_SIGNAL_IDS})")
# What the batch changed in each report: its live signals after the batch counted in, before it counted out.
_DERIVE_VECTOR_DELTAS = f"""
INSERT INTO report_vector_deltas
    (team_id, report_id, model, batch_key, first_batch_key, signal_count, weight, vector_sum)
SELECT m.team_id, m.report_id, e.model, {{batch}}, m.first_batch_key, sum(m.sign), sum(m.sign * m.weight),
       sumForEach(arrayMap(x -> m.sign * toFloat64(x), e.embedding))
FROM (
    SELECT team_id, signal_id, report_id, first_batch_key, weight, toInt64(1) AS sign
    FROM ({_AFTER}) WHERE deleted = 0
    UNION ALL
    SELECT team_id, signal_id, report_id, first_batch_key, weight, toInt64(-1) AS sign
    FROM ({_BEFORE}) WHERE deleted = 0
) AS m
INNER JOIN (
    SELECT signal_id, model, embedding FROM signal_embeddings
    WHERE team_id = {{team}} AND signal_id IN ({_BATCH_SIGNAL_IDS})
) AS e ON e.signal_id = m.signal_id
GROUP BY m.team_id, m.report_id, e.model, m.first_batch_key
"""
# What report_vector_batches records of a batch's assignment rows (aggregated per team and batch).
ASSIGNMENTS_HASH = "sum(cityHash64(signal_id, seq, report_id, deleted, weight))"
_ASSIGNMENT_HASHES = (
    f"SELECT batch_key, {ASSIGNMENTS_HASH} AS hash "
    "FROM report_assignments WHERE team_id = {team} AND batch_key < {batch} GROUP BY batch_key"
)
# The marker, hashed where the assignments are (none when the team has none in the batch).
_MARK_BATCH = f"""
INSERT INTO report_vector_batches (team_id, batch_key, assignments_hash)
SELECT team_id, batch_key, {ASSIGNMENTS_HASH} FROM report_assignments
WHERE team_id = {{team}} AND batch_key = {{batch}} GROUP BY team_id, batch_key
"""
_MARKED_BATCHES = (
    "SELECT batch_key, assignments_hash FROM report_vector_batches WHERE team_id = {team} AND batch_key < {batch}"
)
_DELTA_BATCHES = "SELECT DISTINCT batch_key FROM report_vector_deltas WHERE team_id = {team} AND batch_key < {batch}"


def derive_vector_deltas(db: StoreSession, team: int, batch: str) -> None:
    """Replace the team's report_vector_deltas of `batch` by what its assignments say, then mark them
    complete with the assignments' hash. A kill -9 part-way leaves the marker missing, so the next
    `repair_vector_deltas` derives them again. The team's snapshots from this batch on summed the old
    deltas, so they go first."""
    params = {"team": team, "batch": batch}
    db.delete_where("report_vector_snapshots", "team_id = {team} AND batch_key >= {batch}", params)
    db.delete_where("report_vector_batches", "team_id = {team} AND batch_key = {batch}", params)
    db.delete_where("report_vector_deltas", "team_id = {team} AND batch_key = {batch}", params)
    db.command(_DERIVE_VECTOR_DELTAS, params)  # no rows when the team has no assignments in the batch
    db.command(_MARK_BATCH, params)


def repair_vector_deltas(db: StoreSession, team: int, batch: str) -> int:
    """Derive again the team's vector deltas of batches before `batch` that do not match their
    assignments (a write killed between the two, a store from before the deltas existed), and of
    every batch after the first such one, since a batch's deltas depend on the assignments before it.
    Returns how many batches were derived."""
    params = {"team": team, "batch": batch}
    assigned = {r["batch_key"]: r["hash"] for r in db.query(_ASSIGNMENT_HASHES, params)}
    marked = {r["batch_key"]: r["assignments_hash"] for r in db.query(_MARKED_BATCHES, params)}
    with_rows = {r["batch_key"] for r in db.query(_DELTA_BATCHES, params)}
    keys = assigned.keys() | marked.keys() | with_rows
    # unmarked delta rows were left half-written
    stale = [key for key in keys if assigned.get(key) != marked.get(key) or key not in marked]
    if not stale:
        return 0
    again = sorted(key for key in keys if key >= min(stale))
    for key in again:
        derive_vector_deltas(db, team, key)
    return len(again)
