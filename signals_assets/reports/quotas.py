"""Fairness of report rounds across teams: a daily limit per team, and a fair order of promotions.

A report round (judgement, then research) is *admitted* the first time the promotion sensor or
`signals process` would run it: its name is recorded in the team's ledger for the UTC day
(`report_quota/<team_id>/<YYYYMMDD>/<report>-round<N>`) and its promotion object gets
`admitted_on`. Once a team's ledger for the day holds its limit (SIGNALS_MAX_REPORTS_PER_TEAM_DAY,
or the team config's `max_reports_per_day`), its other promotions stay pending: *deferred*, never
dropped, shown by `signals status`, and admitted oldest first from the next day on. An admitted
round keeps its admission through retries, so a retry never counts twice.

Pending rounds are run in round-robin order across teams (each team's oldest first), and a report
run's queue priority falls with the number of its team's rounds already queued or running, so a
team with hundreds of rounds queued does not hold back another team's first one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from signals_assets.fairness import round_robin
from signals_assets.ingestion.teams import team_limit
from signals_assets.partition_keys import report_team_id
from signals_assets.reports.promotions import promotion_key, promotion_unit, unit_report
from signals_assets.storage.object_store import ObjectStore

QUOTA = "report_quota/"
LIMIT_FIELD = "max_reports_per_day"


def quota_day(now: float) -> str:
    return datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d")


def next_window(now: float) -> datetime:
    """Start of the next UTC day, when deferred rounds are admitted again."""
    day = datetime.fromtimestamp(now, timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1)


def team_ledgers_prefix(team_id: int) -> str:
    return f"{QUOTA}{team_id}/"


def ledger_prefix(team_id: int, day: str) -> str:
    return f"{team_ledgers_prefix(team_id)}{day}/"


def team_daily_limit(store: ObjectStore, team_id: int, default: int) -> int:
    return team_limit(store, team_id, LIMIT_FIELD, default)


@dataclass
class Admission:
    admitted: list[dict] = field(default_factory=list)  # in fair order
    deferred: list[dict] = field(default_factory=list)


def fair_order(promotions: list[dict]) -> list[dict]:
    """Round-robin across teams, each team's rounds oldest first, the team waiting longest first."""
    by_team: dict[int, list[dict]] = defaultdict(list)
    for promotion in sorted(promotions, key=lambda p: (float(p["promoted_at"]), p["report_id"], int(p["round"]))):
        by_team[int(promotion["team_id"])].append(promotion)
    return round_robin(list(by_team.values()))


def admit(store: ObjectStore, promotions: list[dict], now: float, limit_for: Callable[[int], int]) -> Admission:
    """Split pending promotions into the ones that may run (admitting new ones while their team's
    ledger for today has room) and the ones deferred to a later day."""
    day = quota_day(now)
    ledgers: dict[int, set[str]] = {}
    admission = Admission()
    for promotion in fair_order(promotions):
        if promotion.get("admitted_on"):
            admission.admitted.append(promotion)
            continue
        team = int(promotion["team_id"])
        prefix = ledger_prefix(team, day)
        if team not in ledgers:
            ledgers[team] = set(store.list(prefix))
        entry = prefix + promotion_unit(promotion["report_id"], int(promotion["round"]))
        if entry not in ledgers[team] and len(ledgers[team]) >= limit_for(team):
            admission.deferred.append(promotion)
            continue
        if entry not in ledgers[team]:
            store.put(entry, b"")
            ledgers[team].add(entry)
        admitted = {**promotion, "admitted_on": day}
        store.put(promotion_key(promotion["report_id"], int(promotion["round"])), json.dumps(admitted).encode())
        admission.admitted.append(admitted)
    return admission


def queue_priorities(teams_to_run: list[int], in_flight_units: list[str]) -> list[int]:
    """The `dagster/priority` of each run to request, in order: minus the number of rounds of its
    team already queued or running (or requested before it), so the queue alternates between teams."""
    queued: dict[int, int] = defaultdict(int)
    for unit in in_flight_units:
        queued[report_team_id(unit_report(unit))] += 1
    priorities = []
    for team in teams_to_run:
        priorities.append(-queued[team])
        queued[team] += 1
    return priorities


def team_quota(store: ObjectStore, team_id: int, pending: list[dict], default_limit: int, now: float) -> dict:
    """What `signals status` shows: today's limit and use, and the team's deferred rounds."""
    limit = team_daily_limit(store, team_id, default_limit)
    used = len(store.list(ledger_prefix(team_id, quota_day(now))))
    waiting = [
        promotion_unit(p["report_id"], int(p["round"]))
        for p in fair_order(pending)
        if int(p["team_id"]) == team_id and not p.get("admitted_on") and not p.get("parked")
    ]
    deferred = waiting if used >= limit else waiting[max(0, limit - used) :]
    return {
        "limit_per_day": limit,
        "admitted_today": used,
        "deferred": deferred,
        "resumes_at": next_window(now).isoformat() if deferred else None,
    }


def forget_ledgers_before(store: ObjectStore, now: float) -> int:
    """Remove ledger entries of days before yesterday (they no longer limit anything); how many."""
    oldest_kept = quota_day(now - 86400)
    removed = 0
    teams, _ = store.list_level(QUOTA)
    for team in teams:
        days, _ = store.list_level(team)
        for day in days:
            if day[len(team) : -1] < oldest_kept:
                for key in store.list(day):
                    store.delete(key)
                    removed += 1
    return removed
