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

from signals_assets.objects import ObjectStore

PROMOTIONS = "promotions/"


def promotion_unit(report_id: str, round_: int) -> str:
    """The promotion's name, also the run key of its first report run."""
    return f"{report_id}-round{round_}"


def promotion_key(report_id: str, round_: int) -> str:
    return f"{PROMOTIONS}{promotion_unit(report_id, round_)}.json"


def record_promotions(store: ObjectStore, batch: str, promotions: list[dict]) -> None:
    at = datetime.now(timezone.utc).timestamp()
    for p in promotions:
        body = {"report_id": p["report_id"], "team_id": p["team_id"], "round": p["round"], "batch_key": batch,
                "promoted_at": at}
        store.put(promotion_key(p["report_id"], p["round"]), json.dumps(body).encode())


def all_promotions(store: ObjectStore) -> list[dict]:
    """Every promotion not yet done, parked ones included, in key order."""
    return [json.loads(store.get(key)) for key in store.list(PROMOTIONS) if key.endswith(".json")]


def pending_promotions(store: ObjectStore) -> list[dict]:
    return [p for p in all_promotions(store) if not p.get("parked")]


def promotion_done(store: ObjectStore, report_id: str, round_: int) -> None:
    """The report's round `round_` has an outcome: it and any earlier round of the report are done."""
    prefix = f"{PROMOTIONS}{report_id}-round"
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
