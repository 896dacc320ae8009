"""Promotions as durable facts in the object store, until their report round is done.

`report_assignments` writes `promotions/<report_id>-round<N>.json` after its store commit;
`report_research` removes it once the round has an outcome (researched, skipped because the
summary moved the report on, or failed), as does the research reconciler when it fails a round
whose run died. Until then the promotion sensor and `signals process` (through the same code)
request a run for it, so a kill between promotion and research never strands a `candidate`.
A promotion whose runs keep failing is parked in place (its object gets a `parked` reason).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Sequence

from signals_assets.storage.object_store import ObjectStore

PROMOTIONS = "promotions/"


def promotion_unit(report_id: str, round_: int) -> str:
    """The promotion's name, also the run key of its first report run."""
    return f"{report_id}-round{round_}"


def unit_report(unit: str) -> str:
    """The report of a promotion's name (`promotion_unit`)."""
    return unit.rsplit("-round", 1)[0]


def unit_round(unit: str) -> int:
    """The round of a promotion's name (`promotion_unit`)."""
    return int(unit.rsplit("-round", 1)[1])


def promotion_key(report_id: str, round_: int) -> str:
    return f"{PROMOTIONS}{promotion_unit(report_id, round_)}.json"


def record_promotions(store: ObjectStore, batch: str, promotions: list[dict]) -> None:
    at = datetime.now(timezone.utc).timestamp()
    for p in promotions:
        body = {
            "report_id": p["report_id"],
            "team_id": p["team_id"],
            "round": p["round"],
            "batch_key": batch,
            "promoted_at": at,
        }
        store.put(promotion_key(p["report_id"], p["round"]), json.dumps(body).encode())


def all_promotions(store: ObjectStore) -> list[dict]:
    """Every promotion not yet done, parked ones included, in key order."""
    promotions = []
    for key in store.list(PROMOTIONS):
        if not key.endswith(".json"):
            continue
        try:
            promotions.append(json.loads(store.get(key)))
        except KeyError:
            continue  # a report run finished it between the listing and this read: it is done
    return promotions


def pending_promotions(store: ObjectStore) -> list[dict]:
    return [p for p in all_promotions(store) if not p.get("parked")]


def _report_promotions_prefix(report_id: str) -> str:
    return f"{PROMOTIONS}{report_id}-round"


def has_open_round(store: ObjectStore, report_id: str) -> bool:
    """Whether a round of the report is promoted and not done (pending or parked)."""
    return bool(store.list(_report_promotions_prefix(report_id)))


def promotion_done(store: ObjectStore, report_id: str, round_: int) -> None:
    """The report's round `round_` has an outcome: it and any earlier round of the report are done."""
    prefix = _report_promotions_prefix(report_id)
    for key in store.list(prefix):
        number = key[len(prefix) :].removesuffix(".json")
        if number.isdigit() and int(number) <= round_:
            store.delete(key)


def park_promotion(store: ObjectStore, promotion: dict, reason: str, attempts: int) -> None:
    parked = {**promotion, "parked": reason, "attempts": attempts, "parked_at": datetime.now(timezone.utc).isoformat()}
    store.put(promotion_key(promotion["report_id"], promotion["round"]), json.dumps(parked).encode())


def unpark_promotion(store: ObjectStore, promotion: dict) -> dict:
    """Resume a parked promotion with a fresh attempt budget; the park record."""
    if not promotion.get("parked"):
        raise ValueError(f"report round {promotion_unit(promotion['report_id'], promotion['round'])} is not parked")
    resumed = {k: v for k, v in promotion.items() if k not in ("parked", "parked_at", "attempts")}
    resumed["attempts_forgiven"] = promotion["attempts"]
    store.put(promotion_key(promotion["report_id"], promotion["round"]), json.dumps(resumed).encode())
    return promotion


def report_run_groups(
    rounds: list[tuple[dict, str]], partition_order: Sequence[str], reports_per_run: int
) -> list[list[tuple[dict, str]]]:
    """The rounds to run (promotion, attempt key) split into report runs: one team per run, at most
    `reports_per_run` reports, and reports that are consecutive in the `reports` partition set, so
    that each run is one partition range holding exactly its reports.

    `partition_order` is the set's current order; reports not in it yet come after it, sorted (the
    order in which the promotion sensor's add request appends them, a team's keys together)."""
    position = {key: index for index, key in enumerate(partition_order)}
    new_keys = sorted({p["report_id"] for p, _ in rounds} - position.keys())
    position.update({key: len(partition_order) + index for index, key in enumerate(new_keys)})
    by_team: dict[int, list[tuple[dict, str]]] = {}
    for item in rounds:
        by_team.setdefault(int(item[0]["team_id"]), []).append(item)
    groups = []
    for team in sorted(by_team):
        group: list[tuple[dict, str]] = []
        reports_in_group = 0
        for item in sorted(by_team[team], key=lambda i: (position[i[0]["report_id"]], i[1])):
            at = position[item[0]["report_id"]]
            last = position[group[-1][0]["report_id"]] if group else None
            if at == last:  # another round of the same report: the run researches its latest
                group.append(item)
                continue
            if last is not None and (at != last + 1 or reports_in_group >= reports_per_run):
                groups.append(group)
                group, reports_in_group = [], 0
            group.append(item)
            reports_in_group += 1
        groups.append(group)
    return groups
