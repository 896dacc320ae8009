"""What `signals status`, `list-reports` and `regroup` read: the store's tables and models, the unfinished work."""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from typing import Iterator

from signals_assets.cli.main import err
from signals_assets.reports.lifecycle import CANDIDATE, IN_PROGRESS
from signals_assets.settings import Settings
from signals_assets.storage.clickhouse import StoreSession, open_store
from signals_assets.storage.facts import latest_report_states
from signals_assets.storage.object_store import open_object_store
from signals_assets.storage.sql_models import build_models


@contextmanager
def store_session(settings: Settings) -> Iterator[StoreSession]:
    """The store with schema and SQL model views in place (the CLI may run before any job)."""
    with open_store(
        settings.clickhouse_url,
        settings.clickhouse_path,
        settings.clickhouse_database,
        settings.clickhouse_user,
        os.environ.get("SIGNALS_CLICKHOUSE_PASSWORD", ""),
        settings.clickhouse_secure,
        settings.vector_index_dimensions,
        log=err,
    ) as db:
        build_models(db)
        yield db


def team_batches(settings: Settings, team_id: int) -> list[str]:
    """The batches holding the team's accepted signals, in key order (what `signals regroup` re-groups)."""
    with store_session(settings) as db:
        return [
            r["batch_key"]
            for r in db.query(
                "SELECT DISTINCT batch_key FROM signals WHERE team_id = {team} ORDER BY batch_key", {"team": team_id}
            )
        ]


def unfinished_work(
    store, team_id: int | None = None, listed: list | None = None, pending: list[dict] | None = None
) -> list[str]:
    """One line per batch or report round not done yet, parked ones with their reason; with `team_id`,
    only that team's report rounds (batches are every team's). `listed` and `pending`: the open batches
    and the promotions as the caller has just read them (the status: one snapshot); else read here."""
    from signals_assets.ingestion import inbox
    from signals_assets.reports import promotions

    lines = []
    for progress in inbox.open_batch_progress(store, move_mark=False) if listed is None else listed:
        if progress.stray:
            continue  # no batch: named among the stray folders
        if progress.parked is not None:
            lines.append(
                f"batch {progress.batch}: parked ({progress.parked['reason']}); `signals unpark {progress.batch}`"
            )
        elif not progress.finished:
            lines.append(f"batch {progress.batch}: {progress.next_stage} not done")
    for promotion in promotions.all_promotions(store) if pending is None else pending:
        if team_id is not None and int(promotion["team_id"]) != team_id:
            continue
        unit = promotions.promotion_unit(promotion["report_id"], promotion["round"])
        lines.append(
            f"report {promotion['report_id']} round {promotion['round']}: "
            + (
                f"parked ({promotion['parked']}); `signals unpark {unit}`"
                if promotion.get("parked")
                else "promoted, research not done"
            )
        )
    return lines


_STATUS_SQL = """
SELECT
    (SELECT count() FROM signals WHERE team_id = {team}) AS accepted,
    (SELECT count() FROM rejected_signals WHERE team_id = {team}) AS rejected,
    (SELECT uniqExact(signal_id) FROM report_assignments WHERE team_id = {team}) AS assigned
"""
# The team's reports by status from their latest lifecycle events alone: the `reports` model has one
# row per report with events and takes its status from them, but evaluating it aggregates every
# assignment of the store (seconds at a million signals) for counts the status does not print.
_REPORTS_BY_STATUS = f"""
SELECT status, count() AS n FROM ({latest_report_states("team_id = {team}")})
GROUP BY status ORDER BY status
"""


# The team's accepted signals that a parked batch buffered and did not group: they wait for `signals unpark`.
_HELD_BY_PARKED_BATCHES = """
SELECT batch_key, count() AS n FROM signals
WHERE team_id = {team} AND batch_key IN {batches}
  AND signal_id NOT IN (SELECT signal_id FROM report_assignments WHERE team_id = {team})
GROUP BY batch_key
"""
# Reports in flight other than those whose round is parked: those wait for `signals unpark` too.
_IN_FLIGHT_NOT_PARKED = f"""
SELECT count() AS n FROM ({latest_report_states("team_id = {team}")})
WHERE status IN ('{CANDIDATE}', '{IN_PROGRESS}') AND report_id NOT IN {{parked_reports}}
"""


def parked_holding_team(store, db: StoreSession, team_id: int, progress: list) -> tuple[dict[str, int], int]:
    """The parked batches holding signals of the team, each with their number: claimed and not buffered
    yet (no accepted signal then), or accepted and not grouped; and how many of those are claims."""
    from signals_assets.ingestion import inbox

    parked = [p.batch for p in progress if p.parked is not None and not p.stray]
    held = {batch: len(store.list(f"{inbox.CLAIMED}{batch}/{team_id}/")) for batch in parked}
    claims = sum(held.values())
    if parked:
        for row in db.query(_HELD_BY_PARKED_BATCHES, {"team": team_id, "batches": parked}):
            held[row["batch_key"]] += int(row["n"])
    return {batch: n for batch, n in held.items() if n}, claims


def team_status(settings: Settings, team_id: int, now: float | None = None) -> dict:
    from signals_assets.ingestion import inbox
    from signals_assets.reports import promotions, quotas

    store = open_object_store(settings)
    progress = inbox.open_batch_progress(store, move_mark=False)
    pending_promotions = [p for p in promotions.all_promotions(store) if int(p["team_id"]) == team_id]
    parked_rounds = [p for p in pending_promotions if p.get("parked")]
    with store_session(settings) as db:
        counts = db.query(_STATUS_SQL, {"team": team_id})[0]
        by_status = {r["status"]: int(r["n"]) for r in db.query(_REPORTS_BY_STATUS, {"team": team_id})}
        held, held_claims = parked_holding_team(store, db, team_id, progress)
        parked_reports = sorted({p["report_id"] for p in parked_rounds})
        in_flight_not_parked = (
            int(db.query(_IN_FLIGHT_NOT_PARKED, {"team": team_id, "parked_reports": parked_reports})[0]["n"])
            if parked_reports
            else sum(by_status.get(s, 0) for s in (CANDIDATE, IN_PROGRESS))
        )
        rejected = db.query(
            "SELECT reason, detail, quote, source_id FROM rejected_signals WHERE team_id = {team} "
            "ORDER BY rejected_at DESC, signal_id LIMIT 20",
            {"team": team_id},
        )
        by_reason = {
            r["reason"]: int(r["n"])
            for r in db.query(
                "SELECT reason, count() AS n FROM rejected_signals WHERE team_id = {team} GROUP BY reason ORDER BY reason",
                {"team": team_id},
            )
        }
        unsafe_by_kind = {
            r["kind"]: int(r["n"])
            for r in db.query(
                "SELECT detail AS kind, count() AS n FROM rejected_signals WHERE team_id = {team} AND reason = 'unsafe' "
                "GROUP BY detail ORDER BY detail",
                {"team": team_id},
            )
        }
    return {
        "team_id": team_id,
        "inbox_pending": inbox.pending_inbox_count(store, team_id),
        "unfinished_batches": len(inbox.unfinished(progress)),
        "parked": sum(1 for p in progress if p.parked is not None and not p.stray)
        + sum(1 for p in pending_promotions if p.get("parked")),
        "promotions_pending": sum(1 for p in pending_promotions if not p.get("parked")),
        "unfinished_work": unfinished_work(store, team_id, progress, pending_promotions),
        # What of the team's work only `signals unpark` releases (`status --wait` stops at it).
        "parked_for_team": {
            "batches": held,
            "signals_not_buffered": held_claims,
            "report_rounds": [promotions.promotion_unit(p["report_id"], p["round"]) for p in parked_rounds],
        },
        "reports_in_flight_not_parked": in_flight_not_parked,
        "stray_folders": inbox.stray_notes(store, progress),
        "report_quota": quotas.team_quota(
            store, team_id, pending_promotions, settings.max_reports_per_team_day, time.time() if now is None else now
        ),
        **{k: int(v) for k, v in counts.items()},
        "reports": sum(by_status.values()),
        "reports_by_status": by_status,
        "rejected_by_reason": by_reason,
        "unsafe_by_kind": unsafe_by_kind,
        "recent_rejections": rejected,
    }


def is_settled(status: dict, expected_signals: int | None) -> bool:
    """Nothing of the team's work left: nothing in flight, nothing parked holding it."""
    parked = status["parked_for_team"]
    return (
        not parked["batches"]
        and not parked["report_rounds"]
        and status["assigned"] >= status["accepted"]
        and _nothing_in_flight(status, expected_signals)
    )


def only_parked_left(status: dict, expected_signals: int | None) -> bool:
    """All that is left of the team's work is parked (batches holding its signals, its report rounds):
    it waits for `signals unpark`, however long one waits for it."""
    parked = status["parked_for_team"]
    claims = parked["signals_not_buffered"]
    return (
        bool(parked["batches"] or parked["report_rounds"])
        and status["accepted"] - status["assigned"] <= sum(parked["batches"].values()) - claims
        and _nothing_in_flight(status, None if expected_signals is None else expected_signals - claims)
    )


def _nothing_in_flight(status: dict, expected_signals: int | None) -> bool:
    return (
        status["inbox_pending"] == 0
        and status["unfinished_batches"] == 0
        and status["promotions_pending"] == 0
        and status["reports_in_flight_not_parked"] == 0
        and (expected_signals is None or status["accepted"] + status["rejected"] >= expected_signals)
    )


_REPORTS_SQL = """
SELECT report_id AS id, status, title, summary, signal_count, total_weight, research_status, sandbox,
       repository, findings, log_key,
       priority, actionability, actionability_reason, safety, safety_kind, safety_quote, error, merged_into
FROM reports WHERE team_id = {team} AND ({status} = '' OR status = {status})
ORDER BY total_weight DESC, signal_count DESC, id LIMIT {limit}
"""


def list_reports(
    settings: Settings, team_id: int, status: str = "", limit: int = 100, with_signals: bool = False
) -> dict:
    with store_session(settings) as db:
        rows = db.query(_REPORTS_SQL, {"team": team_id, "status": status, "limit": limit})
        signals: dict[str, list[dict]] = {}
        if with_signals and rows:
            for s in db.query(
                "SELECT report_id, signal_id, source_id, source_product, source_type, description FROM report_signals "
                "WHERE team_id = {team} AND report_id IN {ids} ORDER BY assigned_at, signal_id",
                {"team": team_id, "ids": [r["id"] for r in rows]},
            ):
                signals.setdefault(s.pop("report_id"), []).append(s)
    reports = []
    for row in rows:
        report = {
            k: row[k]
            for k in (
                "id",
                "status",
                "title",
                "summary",
                "signal_count",
                "total_weight",
                "priority",
                "actionability",
                "actionability_reason",
                "error",
                "merged_into",
            )
        }
        report["safety"] = {"verdict": row["safety"], "kind": row["safety_kind"], "quote": row["safety_quote"]}
        report["research"] = {
            "status": row["research_status"],
            "sandbox": row["sandbox"],
            "repository": row["repository"],
            "findings": json.loads(row["findings"] or "[]"),
            "log_key": row["log_key"],
        }
        if with_signals:
            report["signals"] = signals.get(row["id"], [])
        reports.append(report)
    return {"reports": reports, "count": len(reports)}
