"""Facts of the store that several queries need, each defined here once.

A fact is a SELECT over base tables. Python queries embed it as a subquery, narrowed by a filter on
the base rows (`current_assignments("team_id = {team} AND batch_key < {batch}")`); the SQL models
embed it unfiltered with `{{ fact('current_assignments') }}` (storage/sql_models.py), which also
makes the model depend on the fact's base tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from signals_assets.reports.lifecycle import IN_PROGRESS


def current_assignments(where: str = "") -> str:
    """Each signal's current assignment. Assignments are append-only: the consolidation may re-assign a
    signal of an earlier batch in a later batch, so the latest row by (batch_key, seq) wins; `first_*`
    say when the signal was first grouped. `where` keeps only some assignment rows before choosing
    (e.g. those of the batches before the one being grouped, so a re-grouping sees what the first
    grouping saw)."""
    return f"""SELECT
    team_id,
    signal_id,
    argMax(report_id, (batch_key, seq)) AS report_id,
    argMax(weight, (batch_key, seq)) AS weight,
    argMax(deleted, (batch_key, seq)) AS deleted,
    argMax(decision, (batch_key, seq)) AS decision,
    argMax(similarity, (batch_key, seq)) AS similarity,
    argMax(matched_signal_id, (batch_key, seq)) AS matched_signal_id,
    max(batch_key) AS last_batch_key,
    min(batch_key) AS first_batch_key,
    min(assigned_at) AS first_assigned_at,
    min((batch_key, seq)) AS first_position
FROM report_assignments{f" WHERE {where}" if where else ""}
GROUP BY team_id, signal_id"""


def signals_ever_in(where: str, reports: str = "{reports}") -> str:
    """The ids of the signals that assignment rows matching `where` ever put in the reports `reports` (a
    query parameter): every signal those reports hold now among them. As `current_assignments`' `where`
    (`signal_id IN (…)`), it makes reading a few reports cost their signals, not all of the team's."""
    return f"SELECT signal_id FROM report_assignments WHERE {where} AND report_id IN {reports}"


def latest_report_states(where: str = "") -> str:
    """Each report's latest state. Lifecycle events are append-only, so the latest event by (at, seq)
    gives the status, the research gate (`signals_at_run`) and the detail; title, summary and weight
    reset are the latest non-empty ones. A grouping event (a retitle, a join) carries the status it found;
    `in_progress` it copies from the round's research event and stands only while that does: when a
    re-run clears a dead run's round, the report is the `candidate` its promotion left, not stuck.
    `where` keeps only some events before choosing (e.g. one report's, or not those a re-run of a step
    replaces); it filters in a subquery because the
    aggregates' aliases (`status`, `research_round`, …) shadow the event columns in a WHERE beside them."""
    return f"""SELECT
    team_id,
    report_id,
    argMaxIf(status, (at, seq), NOT (stage = 'grouping' AND status = '{IN_PROGRESS}')) AS status,
    argMax(signals_at_run, (at, seq)) AS signals_at_run,
    argMax(detail, (at, seq)) AS detail,
    argMaxIf(title, (at, seq), title != '') AS title,
    argMaxIf(summary, (at, seq), summary != '') AS summary,
    argMaxIf(weight_after_batch, (at, seq), weight_after_batch != '') AS weight_after_batch,
    max(research_round) AS research_round,
    min(at) AS created_at,
    minIf(toNullable(at), event = 'promoted') AS promoted_at,
    max(at) AS updated_at
FROM {f"(SELECT * FROM report_events WHERE {where})" if where else "report_events"}
GROUP BY team_id, report_id"""


@dataclass(frozen=True)
class Fact:
    sql: Callable[..., str]  # the SELECT; given a filter on the base rows, narrowed by it
    sources: tuple[str, ...]  # the base tables it reads


FACTS: dict[str, Fact] = {
    "current_assignments": Fact(current_assignments, ("report_assignments",)),
    "latest_report_states": Fact(latest_report_states, ("report_events",)),
}
