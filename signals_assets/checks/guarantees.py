"""Each guarantee the README promises, as a query that finds what breaks it.

A check returns a `Verdict`: whether the guarantee holds, one line saying so or naming the first
offenders, a sample of the offending records and the numbers looked at. Checks that concern
batches look at a `BatchScope`: the batches of the run that materialised them (batch keys sort in
claim order, so a run's range is a key interval), or every batch when run on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from signals_assets.ingestion import inbox
from signals_assets.reports import lifecycle, promotions
from signals_assets.storage.clickhouse import StoreSession
from signals_assets.storage.facts import latest_report_states
from signals_assets.storage.object_store import ObjectStore
from signals_assets.storage.sql_models import SqlModel, built_views, load_models, render_narrowed, version_comment

SAMPLE = 20  # offending records listed in a verdict


@dataclass(frozen=True)
class BatchScope:
    """Batches from `first` to `last` (keys inclusive), or every batch when both are None."""

    first: str | None = None
    last: str | None = None

    def where(self, column: str = "batch_key") -> str:
        return "1" if self.first is None else f"{column} BETWEEN {{first}} AND {{last}}"

    @property
    def params(self) -> dict:
        return {"first": self.first, "last": self.last}

    def __contains__(self, batch: str) -> bool:
        return self.first is None or (self.first <= batch <= (self.last or self.first))

    def __str__(self) -> str:
        if self.first is None:
            return "every batch"
        return f"batch {self.first}" if self.first == self.last else f"batches {self.first} to {self.last}"


@dataclass(frozen=True)
class Verdict:
    passed: bool
    summary: str
    problems: list[dict] = field(default_factory=list)  # at most SAMPLE
    counts: dict[str, int] = field(default_factory=dict)


def _verdict(problems: list[dict], ok: str, broken: str, describe: Callable[[dict], str], **counts: int) -> Verdict:
    if not problems:
        return Verdict(True, ok, [], {"problem_count": 0, **counts})
    shown = "; ".join(describe(p) for p in problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return Verdict(
        False, f"{len(problems)} {broken}: {shown}{more}", problems[:SAMPLE], {"problem_count": len(problems), **counts}
    )


_EMBEDDINGS = """
SELECT s.team_id AS team_id, s.signal_id AS signal_id, s.batch_key AS batch_key,
       countIf(e.signal_id != '') AS embeddings,
       groupArrayIf(e.dimension, e.signal_id != '') AS dimensions,
       groupArrayIf(length(e.embedding), e.signal_id != '') AS lengths
FROM (SELECT team_id, signal_id, batch_key FROM signals WHERE {scope}) AS s
LEFT JOIN (
    SELECT team_id, signal_id, dimension, embedding FROM signal_embeddings
    WHERE model = {{model}} AND signal_id IN (SELECT signal_id FROM signals WHERE {scope})
) AS e ON e.team_id = s.team_id AND e.signal_id = s.signal_id
GROUP BY s.team_id, s.signal_id, s.batch_key
HAVING embeddings != 1 OR arrayExists(d -> d != {{dimension}}, arrayConcat(dimensions, lengths))
ORDER BY s.batch_key, s.signal_id
"""
_FIRST_DIMENSION = "SELECT dimension FROM signal_embeddings WHERE model = {model} ORDER BY batch_key, signal_id LIMIT 1"


def embeddings_complete(db: StoreSession, scope: BatchScope, model: str, dimension: int | None) -> Verdict:
    """Every accepted signal has exactly one `model` embedding of `dimension` values (None: the
    dimension of the model's first stored embedding, since vectors of another length cannot be compared)."""
    if dimension is None:
        dimension = db.scalar(_FIRST_DIMENSION, {"model": model})
        if dimension is None:
            dimension = 0  # nothing embedded with this model yet: any accepted signal is missing one
    where = scope.where()
    accepted = int(db.scalar(f"SELECT count() FROM signals WHERE {where}", scope.params) or 0)
    rows = db.query(_EMBEDDINGS.format(scope=where), {**scope.params, "model": model, "dimension": int(dimension)})
    problems = [
        {
            "team_id": r["team_id"],
            "signal_id": r["signal_id"],
            "batch_key": r["batch_key"],
            "embeddings": int(r["embeddings"]),
            "dimensions": sorted({int(d) for d in (*r["dimensions"], *r["lengths"])}),
        }
        for r in rows
    ]
    return _verdict(
        problems,
        f"{accepted} accepted signal(s) of {scope}: one {model} embedding each, of {dimension} dimensions",
        f"accepted signal(s) without exactly one {model} embedding of {dimension} dimensions",
        lambda p: f"{p['signal_id']} ({p['batch_key']}): {p['embeddings']} embedding(s), dimensions {p['dimensions']}",
        accepted_signals=accepted,
        dimension=int(dimension),
    )


# Signals with an assignment in the scope, all their assignment rows considered: one team, exactly
# one row at the latest (batch_key, seq) position, a report of that team (by its key and its events).
_ASSIGNMENTS = """
SELECT a.signal_id AS signal_id, a.teams AS teams, a.current_team AS team_id, a.current_report AS report_id,
       a.current_rows AS current_rows, ev.report_teams AS report_teams
FROM (
    SELECT signal_id, groupUniqArray(team_id) AS teams, max((batch_key, seq)) AS latest,
           arrayCount(p -> p = latest, groupArray((batch_key, seq))) AS current_rows,
           argMax(team_id, (batch_key, seq)) AS current_team, argMax(report_id, (batch_key, seq)) AS current_report
    FROM report_assignments
    WHERE signal_id IN (SELECT signal_id FROM report_assignments WHERE {scope})
    GROUP BY signal_id
) AS a
LEFT JOIN (SELECT report_id, groupUniqArray(team_id) AS report_teams FROM report_events GROUP BY report_id) AS ev
    ON ev.report_id = a.current_report
WHERE length(a.teams) != 1 OR a.current_rows != 1
   OR NOT startsWith(a.current_report, concat('r', toString(a.current_team), '-'))
   OR ev.report_teams != [a.current_team]
ORDER BY a.signal_id
"""
# Accepted signals of batches the grouping has written, without any assignment.
_UNASSIGNED = """
SELECT team_id, signal_id, batch_key FROM signals
WHERE {scope} AND batch_key IN (SELECT DISTINCT batch_key FROM report_assignments WHERE {scope})
  AND (team_id, signal_id) NOT IN (
      SELECT team_id, signal_id FROM report_assignments
      WHERE signal_id IN (SELECT signal_id FROM signals WHERE {scope})
  )
ORDER BY batch_key, signal_id
"""


def _assignment_problem(row: dict) -> dict:
    if len(row["teams"]) != 1:
        reason = f"assigned under teams {sorted(row['teams'])}"
    elif int(row["current_rows"]) != 1:
        reason = f"{row['current_rows']} current assignments"
    elif row["report_teams"] != [row["team_id"]]:
        reason = f"report {row['report_id']} has events of teams {sorted(row['report_teams'])}"
    else:
        reason = f"report {row['report_id']} is not a report of team {row['team_id']}"
    return {"signal_id": row["signal_id"], "team_id": row["team_id"], "report_id": row["report_id"], "problem": reason}


def assignments_consistent(db: StoreSession, scope: BatchScope) -> Verdict:
    """Every assigned signal of the scope has exactly one current assignment, to a report of its own
    team, and every accepted signal of a grouped batch is assigned."""
    where = scope.where()
    assigned = int(
        db.scalar(f"SELECT uniqExact(team_id, signal_id) FROM report_assignments WHERE {where}", scope.params) or 0
    )
    problems = [_assignment_problem(r) for r in db.query(_ASSIGNMENTS.format(scope=where), scope.params)]
    problems += [
        {
            "signal_id": r["signal_id"],
            "team_id": r["team_id"],
            "report_id": "",
            "problem": f"not assigned ({r['batch_key']})",
        }
        for r in db.query(_UNASSIGNED.format(scope=where), scope.params)
    ]
    return _verdict(
        problems,
        f"{assigned} assigned signal(s) of {scope}: one current assignment each, in a report of its own team",
        "signal(s) without exactly one current assignment in a report of their own team",
        lambda p: f"{p['signal_id']}: {p['problem']}",
        assigned_signals=assigned,
    )


def claims_consolidated(every_batch: list[inbox.BatchProgress], scope: BatchScope) -> Verdict:
    """No object under `claimed/` belongs to a batch that has been buffered (or finished);
    `every_batch`: inbox.batch_progress."""
    progress = [p for p in every_batch if p.batch in scope]
    problems = [
        {"batch_key": p.batch, "stages_done": list(p.stages_done)}
        for p in progress
        if p.has_claims and inbox.BUFFERED in p.stages_done
    ]
    buffered = sum(1 for p in progress if inbox.BUFFERED in p.stages_done)
    return _verdict(
        problems,
        f"{buffered} buffered batch(es) of {scope}: nothing left under {inbox.CLAIMED}",
        f"buffered batch(es) with objects left under {inbox.CLAIMED}",
        lambda p: f"{p['batch_key']} (stages done: {', '.join(p['stages_done'])})",
        buffered_batches=buffered,
    )


_IN_PROGRESS = f"""
SELECT e.team_id AS team_id, e.report_id AS report_id, e.research_round AS research_round,
       r.dagster_run_id AS run_id
FROM ({latest_report_states()}) AS e
LEFT JOIN (SELECT report_id, research_round, dagster_run_id FROM research_results WHERE status = 'in_progress') AS r
    ON r.report_id = e.report_id AND r.research_round = e.research_round
WHERE e.status = {{in_progress}}
ORDER BY e.report_id
"""


def reports_in_progress_have_live_runs(db: StoreSession, run_is_live: Callable[[str], bool]) -> Verdict:
    """No report is `in_progress` unless the run its research row names is queued or running."""
    rows = db.query(_IN_PROGRESS, {"in_progress": lifecycle.IN_PROGRESS})
    problems = [
        {"report_id": r["report_id"], "research_round": r["research_round"], "run_id": r["run_id"]}
        for r in rows
        if not run_is_live(r["run_id"])
    ]
    return _verdict(
        problems,
        f"{len(rows)} report(s) in_progress, each with a live research run",
        "report(s) in_progress without a live run",
        lambda p: f"{p['report_id']} round {p['research_round']} (run {p['run_id'] or 'none recorded'})",
        in_progress=len(rows),
    )


# The reports a signal of the scope joined or left: those with a row of a signal with a row in the scope.
_SCOPED = """
SELECT DISTINCT report_id FROM report_assignments
WHERE signal_id IN (SELECT signal_id FROM report_assignments WHERE {scope})
ORDER BY report_id
"""
# What the `reports` model's rows for the scoped reports (`{scoped}`) depend on: their events,
# summaries and research, and every assignment row of each signal with a row in them (a signal's
# current report is chosen among all its rows). By signal id alone, which keeps whole signals (of
# other teams too, whose reports are not scoped) and is matched about 3x faster than (team, signal).
_IN_SCOPED = "report_id IN {scoped}"
_SCOPED_SIGNALS = f"signal_id IN (SELECT signal_id FROM report_assignments WHERE {_IN_SCOPED})"
_REPORTS_INPUTS = {
    "current_assignments": _SCOPED_SIGNALS,
    "latest_report_states": _IN_SCOPED,
    "report_summaries": _IN_SCOPED,
    "research_results": _IN_SCOPED,
}


def _counts_sql(reports: str) -> str:
    """The counts and weights of the `reports` model (read from `reports`) for the scoped reports
    against a recomputation straight from the assignment rows (the latest row of each signal by LIMIT
    BY, not the shared fact the model embeds). Only the signals with a row in a scoped report, all
    their rows, and the scoped reports' events are read: a signal whose rows are all elsewhere counts
    for no scoped report, so a batch run's check costs what its batches touched, not the whole store."""
    return f"""
WITH
    latest AS (
        SELECT team_id, signal_id, report_id, weight, deleted, first_batch_key FROM (
            SELECT team_id, signal_id, report_id, weight, deleted, batch_key, seq,
                   min(batch_key) OVER (PARTITION BY team_id, signal_id) AS first_batch_key
            FROM report_assignments
            WHERE {_SCOPED_SIGNALS}
        )
        ORDER BY team_id, signal_id, batch_key DESC, seq DESC
        LIMIT 1 BY team_id, signal_id
    ),
    resets AS (
        SELECT team_id, report_id, weight_after_batch FROM ({latest_report_states(_IN_SCOPED)})
    ),
    truth AS (
        SELECT l.team_id AS team_id, l.report_id AS report_id, count() AS signal_count,
               sumIf(l.weight, l.first_batch_key > r.weight_after_batch) AS total_weight
        FROM latest AS l LEFT JOIN resets AS r ON r.team_id = l.team_id AND r.report_id = l.report_id
        WHERE l.deleted = 0 AND l.{_IN_SCOPED}
        GROUP BY l.team_id, l.report_id
    ),
    model AS (
        SELECT team_id, report_id, signal_count, total_weight FROM {reports} WHERE {_IN_SCOPED}
    )
SELECT if(m.report_id != '', m.report_id, t.report_id) AS report_id,
       m.signal_count AS model_count, t.signal_count AS assigned_count,
       m.total_weight AS model_weight, t.total_weight AS assigned_weight
FROM model AS m FULL OUTER JOIN truth AS t ON t.team_id = m.team_id AND t.report_id = m.report_id
WHERE m.signal_count != t.signal_count OR abs(m.total_weight - t.total_weight) > 1e-9
ORDER BY report_id
"""


def _reports_model(db: StoreSession, models: list[SqlModel]) -> str:
    """What to read the `reports` model from: a view built from the model's current SQL (its comment
    says so) evaluated over the scoped reports' inputs only, because ClickHouse cannot push a filter on
    reports below the view's aggregation of every assignment (about 2 s at a million signals, in every
    batch run); anything else (a table, a view of other SQL) as it is."""
    by_name = {model.name: model for model in models}
    model = by_name["reports"]
    if model.materialized != "view" or built_views(db).get("reports") != version_comment(model):
        return "reports"
    return f"(\n{render_narrowed(model, by_name, _REPORTS_INPUTS).strip().rstrip(';')}\n)"


def report_counts_match(db: StoreSession, scope: BatchScope, models: list[SqlModel] | None = None) -> Verdict:
    """The `reports` model's signal counts and weights equal what the assignments say, for every
    report that a signal of the scope joined or left. `models`: the SQL models the view was built
    from (those of dbt_like_sql/models by default)."""
    # found once and passed as a list: a subquery would be evaluated again at each of its uses
    scoped = [r["report_id"] for r in db.query(_SCOPED.format(scope=scope.where()), scope.params)]
    rows = []
    if scoped:
        reports = _reports_model(db, load_models() if models is None else models)
        rows = db.query(_counts_sql(reports), {"scoped": scoped})
    return _verdict(
        rows,
        f"the reports of {scope}: counts and weights equal what the assignments say",
        "report(s) whose count or weight differs from the assignments",
        lambda p: (
            f"{p['report_id']}: {p['model_count']} signals / weight {p['model_weight']} in `reports`, "
            f"{p['assigned_count']} / {p['assigned_weight']} assigned"
        ),
    )


def no_parked_batches(every_batch: list[inbox.BatchProgress]) -> Verdict:
    """No batch is parked (given up on after too many failed attempts); `every_batch`: inbox.batch_progress."""
    problems = [
        {"batch_key": p.batch, "reason": p.parked.get("reason", ""), "attempts": p.parked.get("attempts", 0)}
        for p in every_batch
        if p.parked is not None and not p.stray  # a stray folder is no batch, and `signals unpark` refuses it
    ]
    return _verdict(
        problems,
        "no batch is parked",
        "parked batch(es), waiting for `signals unpark`",
        lambda p: f"{p['batch_key']}: {p['reason']}",
    )


def no_parked_rounds(store: ObjectStore) -> Verdict:
    """No report round is parked (given up on after too many failed attempts)."""
    problems = [
        {
            "round": promotions.promotion_unit(p["report_id"], p["round"]),
            "reason": p["parked"],
            "attempts": p.get("attempts", 0),
        }
        for p in promotions.all_promotions(store)
        if p.get("parked")
    ]
    return _verdict(
        problems,
        "no report round is parked",
        "parked report round(s), waiting for `signals unpark`",
        lambda p: f"{p['round']}: {p['reason']}",
    )
