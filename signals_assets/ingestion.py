"""Screening one batch of inbox records: parse, re-validate, de-duplicate, gate, safety filter.

Pure: the caller supplies the records, the team configs and the signal ids already stored by
other batches, and writes the two resulting row lists.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

from signals_assets.safety import SafetyVerdict, check_signal_text
from signals_assets.teams import TeamConfig, gate_reason
from signals_assets.validation import SignalValidationError, validate_signal

ENVELOPE_FIELDS = ("signal_id", "emitted_at")


@dataclass
class ScreenedBatch:
    accepted: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)

    def rejection_counts(self) -> dict[str, int]:
        return dict(Counter(row["reason"] for row in self.rejected))

    def unsafe_by_kind(self) -> dict[str, int]:
        return dict(Counter(row["detail"] for row in self.rejected if row["reason"] == "unsafe"))


def parse_record(body: bytes) -> dict:
    """The inbox record as emitted, with the envelope checked; raises SignalValidationError."""
    try:
        record = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SignalValidationError("body", f"must be JSON ({error})") from None
    if not isinstance(record, dict) or not isinstance(record.get("signal_id"), str) or not record["signal_id"]:
        raise SignalValidationError("signal_id", "must be a non-empty string")
    return record


def record_signal_ids(objects: Iterable[tuple[str, bytes]]) -> list[str]:
    ids = []
    for _, body in objects:
        try:
            ids.append(parse_record(body)["signal_id"])
        except SignalValidationError:
            continue
    return ids


def screen_batch(
    batch: str,
    batch_time: datetime,
    objects: Iterable[tuple[str, bytes]],
    team_config: Callable[[int], TeamConfig | None],
    already_stored: set[str],
    check_text: Callable[[str], SafetyVerdict] = check_signal_text,
) -> ScreenedBatch:
    """`check_text` is the safety filter (the offline rules or an LLM judge's `check_signal`); it runs
    only for signals that passed de-duplication and the team gates."""
    result = ScreenedBatch()
    seen: set[str] = set()
    for name, body in objects:
        base = {"batch_key": batch, "rejected_at": batch_time}
        try:
            record = parse_record(body)
            payload = {k: v for k, v in record.items() if k not in ENVELOPE_FIELDS}
            signal = validate_signal(payload)
        except SignalValidationError as error:
            result.rejected.append({**base, "team_id": 0, "signal_id": name, "source_product": "",
                                    "source_type": "", "source_id": "", "description": body.decode("utf-8", "replace")[:2000],
                                    "reason": "malformed", "detail": str(error), "quote": ""})
            continue
        row = {
            "team_id": signal.team_id, "signal_id": record["signal_id"], "batch_key": batch,
            "source_product": signal.source_product, "source_type": signal.source_type,
            "source_id": signal.source_id, "description": signal.description,
        }
        reason, detail, quote = _rejection(row["signal_id"], signal, seen, already_stored, team_config, check_text)
        if reason:
            result.rejected.append({**row, "rejected_at": batch_time, "reason": reason, "detail": detail, "quote": quote})
            continue
        seen.add(row["signal_id"])
        result.accepted.append({
            **row, "weight": signal.weight, "extra": json.dumps(signal.extra, sort_keys=True),
            "idempotency_key": signal.idempotency_key or "",
            "emitted_at": _parse_time(record.get("emitted_at"), batch_time), "ingested_at": batch_time,
        })
    return result


def _rejection(signal_id, signal, seen, already_stored, team_config, check_text) -> tuple[str, str, str]:
    if signal_id in seen or signal_id in already_stored:
        where = "this batch" if signal_id in seen else "an earlier batch"
        return "duplicate", f"signal {signal_id} was already accepted in {where}", ""
    gate = gate_reason(team_config(signal.team_id), signal.team_id, signal.source_product, signal.source_type)
    if gate:
        return "gated", gate, ""
    verdict = check_text(signal.description)
    if not verdict.safe:
        return "unsafe", verdict.kind, verdict.display_quote
    return "", "", ""


def _parse_time(value, default: datetime) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return default
