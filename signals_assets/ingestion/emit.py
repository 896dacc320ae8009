"""`emit_signal`: validate one signal, apply the team gates, write it to the inbox. Nothing else.

Callers import it from `signals_assets.facade`, the stable public path.

Importing this module must stay cheap for every caller (no Dagster, database or cloud client):
everything on its import path is standard library, and a test checks `sys.modules`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import NamedTuple

from signals_assets.ingestion.signal_ids import signal_id_for
from signals_assets.ingestion.teams import gate_reason, load_team
from signals_assets.ingestion.validation import DEFAULT_WEIGHT, ValidSignal, validate_signal
from signals_assets.settings import Settings, load_settings
from signals_assets.storage.object_store import ObjectStore, open_object_store

INBOX_PREFIX = "inbox/"


class EmitResult(NamedTuple):
    signal_id: str | None  # None when a gate stopped the signal
    gated_reason: str | None = None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} must be timezone-aware")
    return moment.astimezone(timezone.utc)


def inbox_key(team_id: int, received_at: datetime, signal_id: str) -> str:
    """Inbox object key: one folder per team, so a claim can take from every team's queue without
    listing another team's backlog; within it keys sort in receive order (UTC, microseconds)."""
    return f"{INBOX_PREFIX}{team_id}/{_utc(received_at):%Y%m%dT%H%M%S%fZ}-{signal_id}.json"


def object_signal_id(key: str) -> str:
    """The signal id in an inbox object's key or name (`…/<received at>-<signal id>.json`)."""
    return key.rsplit("/", 1)[-1].removesuffix(".json").split("-", 1)[-1]


def signal_record(valid: ValidSignal, signal_id: str, emitted_at: datetime) -> dict:
    """The inbox object's JSON body: the validated payload plus the envelope (signal_id, emitted_at)."""
    return {
        "signal_id": signal_id,
        "team_id": valid.team_id,
        "source_product": valid.source_product,
        "source_type": valid.source_type,
        "source_id": valid.source_id,
        "description": valid.description,
        "weight": valid.weight,
        "extra": valid.extra,
        "idempotency_key": valid.idempotency_key,
        "emitted_at": _utc(emitted_at).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def emit_signal_result(
    team_id: int,
    source_product: str,
    source_type: str,
    source_id: str,
    description: str,
    weight: float = DEFAULT_WEIGHT,
    extra: dict | None = None,
    idempotency_key: str | None = None,
    *,
    store: ObjectStore | None = None,
    settings: Settings | None = None,
) -> EmitResult:
    """Like `emit_signal`, but says why a gated signal was not emitted."""
    settings = settings or load_settings()
    valid = validate_signal(
        {
            "team_id": team_id,
            "source_product": source_product,
            "source_type": source_type,
            "source_id": source_id,
            "description": description,
            "weight": weight,
            "extra": extra,
            "idempotency_key": idempotency_key,
        },
        settings.signal_limits,
    )
    if store is None:
        store = open_object_store(settings)
    reason = gate_reason(load_team(store, valid.team_id), valid.team_id, valid.source_product, valid.source_type)
    if reason:
        return EmitResult(signal_id=None, gated_reason=reason)
    signal_id = signal_id_for(valid.team_id, valid.idempotency_key)
    received_at = datetime.now(timezone.utc)
    record = signal_record(valid, signal_id, received_at)
    # Unescaped UTF-8, the encoding `validate_signal` measured against the inbox reader's size limit.
    body = json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8")
    store.put(inbox_key(valid.team_id, received_at, signal_id), body)
    return EmitResult(signal_id=signal_id)


def emit_signal(
    team_id: int,
    source_product: str,
    source_type: str,
    source_id: str,
    description: str,
    weight: float = DEFAULT_WEIGHT,
    extra: dict | None = None,
    idempotency_key: str | None = None,
    *,
    store: ObjectStore | None = None,
    settings: Settings | None = None,
) -> str | None:
    """Validate and write one signal to the inbox; its id, or None when the team's gates stop it.

    Raises `SignalValidationError` (a ValueError naming the field and the rule) for invalid input;
    nothing is written then, nor when a gate stops the signal.
    """
    return emit_signal_result(
        team_id,
        source_product,
        source_type,
        source_id,
        description,
        weight,
        extra,
        idempotency_key,
        store=store,
        settings=settings,
    ).signal_id
