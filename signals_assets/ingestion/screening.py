"""Screening one batch of inbox records: parse, re-validate, de-duplicate, gate, safety filter.

Pure: the caller supplies the records, the team configs and the signal ids already stored by
other batches, and writes the two resulting row lists.

Inbox objects can arrive by other routes than the emit facade (direct bucket writes, older
clients), so every record is checked again, and one that cannot be accepted, however malformed,
becomes a storable rejected row with the reason: it never fails the batch.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from signals_assets.ingestion.inbox import unusable_key_rule
from signals_assets.ingestion.signal_ids import derived_id_rule
from signals_assets.ingestion.teams import TeamConfig, gate_reason
from signals_assets.ingestion.validation import (
    DEFAULT_LIMITS,
    MAX_SOURCE_ID_CHARS,
    SignalLimits,
    SignalValidationError,
    check_team_id,
    decode_json_object,
    folder_team_id,
    shown,
    storable_text,
    validate_signal,
    without_utf8_bom,
)
from signals_assets.safety.filter import SafetyVerdict, check_signal_text

ENVELOPE_FIELDS = ("signal_id", "emitted_at")
MAX_SIGNAL_ID_CHARS = 200
# How much of a malformed record's own fields its rejected row keeps.
QUARANTINED_NAME_CHARS = 200
QUARANTINED_TEXT_CHARS = 2000
NO_TEAM = 0  # the rejected row of a record without a valid team id: no team's id
STORABLE_YEARS = (1900, 2299)  # ClickHouse's DateTime64 range
# The columns a screened signal's rejected row shares with its accepted row.
REJECTED_FROM_ACCEPTED = (
    "team_id",
    "signal_id",
    "batch_key",
    "source_product",
    "source_type",
    "source_id",
    "description",
)


@dataclass
class ScreenedBatch:
    accepted: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)

    def with_duplicates(self, accepted_elsewhere: Mapping[str, str], rejected_at: datetime) -> ScreenedBatch:
        """This batch with those of its accepted signals that `accepted_elsewhere` (id: batch) holds
        rejected as duplicates of that batch."""
        taken = [row for row in self.accepted if row["signal_id"] in accepted_elsewhere]
        if not taken:
            return self
        duplicates = [
            rejected_row(row, rejected_at, "duplicate", duplicate_detail(row["signal_id"], accepted_elsewhere))
            for row in taken
        ]
        kept = [row for row in self.accepted if row["signal_id"] not in accepted_elsewhere]
        return ScreenedBatch(kept, self.rejected + duplicates)

    def rejection_counts(self) -> dict[str, int]:
        return dict(Counter(row["reason"] for row in self.rejected))

    def unsafe_by_kind(self) -> dict[str, int]:
        return dict(Counter(row["detail"] for row in self.rejected if row["reason"] == "unsafe"))


def parse_record(body: bytes, limits: SignalLimits) -> dict:
    """The inbox record as emitted, with the envelope checked; raises SignalValidationError."""
    record = decode_record(body, limits)
    check_envelope(record)
    return record


def decode_record(body: bytes, limits: SignalLimits) -> dict:
    """The inbox object as a JSON object; raises SignalValidationError."""
    if len(body) > limits.max_signal_bytes:
        raise SignalValidationError(
            "body", f"must be at most {limits.max_signal_bytes} bytes (SIGNALS_MAX_SIGNAL_BYTES), got more"
        )
    if not body:
        raise SignalValidationError("body", "must not be empty (an empty object, or one that could not be read)")
    return decode_json_object(without_utf8_bom(body), "body")


def check_envelope(record: dict) -> None:
    rule = signal_id_rule(record.get("signal_id"))
    if rule:
        raise SignalValidationError("signal_id", rule)


def folder_team(name: str) -> int | None:
    """The team whose inbox folder the object `name` (`<team>/<time>-<signal id>.json`) was claimed
    from; None for an object from before the per-team folders, directly under `inbox/`, and for one in
    a folder that is no team's (only the id as the facade spells it names a team: `1`, not `01`)."""
    folder, _, rest = name.partition("/")
    return folder_team_id(folder) if rest else None


def in_no_teams_folder(name: str) -> bool:
    """Whether the object `name` lies in a folder under `inbox/` named like a team but no team's (`0`,
    `01`, past 2^64 − 1, other digits). A folder of other characters is read as before the team folders."""
    folder, _, rest = name.partition("/")
    return bool(rest) and folder.isdigit() and folder_team(name) is None


def check_inbox_team(name: str, record: dict) -> None:
    """A record must name the team of the inbox folder it was written to: one team's queue (a prefix
    its writers may be scoped to) never carries a signal into another team's reports. A record in a
    folder named like a team but no team's (`inbox/0/`, `inbox/01/`) names no team it may join."""
    if in_no_teams_folder(name):
        folder = name.partition("/")[0]
        raise SignalValidationError(
            "team_id", f"must be in the inbox folder of its team, inbox/<team_id>/, not in folder {shown(folder)}"
        )
    team = folder_team(name)
    if team is not None and record.get("team_id") != team:
        raise SignalValidationError(
            "team_id", f"must be {team}, the team of its inbox folder, got {shown(record.get('team_id'))}"
        )


def signal_id_rule(value: Any) -> str | None:
    """Why `value` is not a usable signal id (it is stored, queried and shown), or None."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if len(value) > MAX_SIGNAL_ID_CHARS:
        return f"must be at most {MAX_SIGNAL_ID_CHARS} characters, got {len(value)}"
    if not value.isprintable():
        return "must be printable (no control characters, no invalid UTF-8)"
    return None


def record_signal_ids(objects: Iterable[tuple[str, bytes]], limits: SignalLimits = DEFAULT_LIMITS) -> list[str]:
    ids = []
    for _, body in objects:
        try:
            ids.append(parse_record(body, limits)["signal_id"])
        except SignalValidationError:
            continue
    return ids


def screen_batch(
    batch: str,
    batch_time: datetime,
    objects: Iterable[tuple[str, bytes]],
    team_config: Callable[[int], TeamConfig | None],
    already_stored: Mapping[str, str],
    check_text: Callable[[str], SafetyVerdict] = check_signal_text,
    limits: SignalLimits = DEFAULT_LIMITS,
) -> ScreenedBatch:
    """`already_stored`: the signal ids accepted in other batches, each with such a batch. `check_text`
    is the safety filter (the offline rules or an LLM judge's `check_signal`); it runs only for signals
    that passed de-duplication and the team gates."""
    result = ScreenedBatch()
    seen: set[str] = set()
    for name, body in objects:
        record: dict = {}
        try:
            record = decode_record(body, limits)
            unusable = unusable_key_rule(name)
            if unusable:
                raise SignalValidationError("object_key", unusable)
            check_envelope(record)
            check_inbox_team(name, record)
            signal = validate_signal({k: v for k, v in record.items() if k not in ENVELOPE_FIELDS}, limits)
            origin = derived_id_rule(record["signal_id"], signal.team_id, signal.idempotency_key)
            if origin:
                raise SignalValidationError("signal_id", origin)
        except SignalValidationError as error:
            result.rejected.append(_quarantined(batch, batch_time, name, record, error))
            continue
        row = {
            "team_id": signal.team_id,
            "signal_id": record["signal_id"],
            "batch_key": batch,
            "source_product": signal.source_product,
            "source_type": signal.source_type,
            "source_id": signal.source_id,
            "description": signal.description,
        }
        reason, detail, quote = _rejection(row["signal_id"], signal, seen, already_stored, team_config, check_text)
        if reason:
            result.rejected.append(rejected_row(row, batch_time, reason, detail, quote))
            continue
        seen.add(row["signal_id"])
        result.accepted.append(
            {
                **row,
                "weight": signal.weight,
                "extra": json.dumps(signal.extra, sort_keys=True),
                "idempotency_key": signal.idempotency_key or "",
                "emitted_at": _parse_time(record.get("emitted_at"), batch_time),
                "ingested_at": batch_time,
            }
        )
    return result


def _quarantined(batch: str, batch_time: datetime, name: str, record: dict, error: SignalValidationError) -> dict:
    """The rejected row of a record that failed validation: its own ids where they are valid, else
    placeholders (no team, the object's name), and every text made storable. An object in a team's
    inbox folder is that team's, whatever team it names; one in a folder named like a team but no
    team's is no team's."""
    team_id = folder_team(name) or (NO_TEAM if in_no_teams_folder(name) else record.get("team_id"))
    try:
        team_id = check_team_id(team_id)
    except SignalValidationError:
        team_id = NO_TEAM
    signal_id = record.get("signal_id")
    if signal_id_rule(signal_id):
        signal_id = f"object:{_storable(name, QUARANTINED_NAME_CHARS)}"
    return {
        "team_id": team_id,
        "signal_id": signal_id,
        "batch_key": batch,
        **{
            key: _storable(record.get(key), limit)
            for key, limit in (
                ("source_product", QUARANTINED_NAME_CHARS),
                ("source_type", QUARANTINED_NAME_CHARS),
                ("source_id", MAX_SOURCE_ID_CHARS),
                ("description", QUARANTINED_TEXT_CHARS),
            )
        },
        "rejected_at": batch_time,
        "reason": "malformed",
        "detail": str(error),
        "quote": "",
    }


def _storable(value: Any, max_chars: int) -> str:
    """`value` cut to `max_chars` with lone surrogates and NULs replaced when it is a string; else ""."""
    return storable_text(value[:max_chars]) if isinstance(value, str) else ""


def _rejection(signal_id, signal, seen, already_stored, team_config, check_text) -> tuple[str, str, str]:
    if signal_id in seen:
        return "duplicate", f"signal {signal_id} was already accepted in this batch", ""
    if signal_id in already_stored:
        return "duplicate", duplicate_detail(signal_id, already_stored), ""
    try:
        config = team_config(signal.team_id)
    except ValueError as error:  # an invalid stored team config stops that team's signals only
        return "gated", str(error), ""
    gate = gate_reason(config, signal.team_id, signal.source_product, signal.source_type)
    if gate:
        return "gated", gate, ""
    verdict = check_text(signal.description)
    if not verdict.safe:
        return "unsafe", verdict.kind, verdict.display_quote
    return "", "", ""


def duplicate_detail(signal_id: str, accepted_elsewhere: Mapping[str, str]) -> str:
    return f"signal {signal_id} was already accepted in batch {accepted_elsewhere[signal_id]}"


def rejected_row(row: dict, rejected_at: datetime, reason: str, detail: str, quote: str = "") -> dict:
    """The rejected row of a screened or stored signal (`row`: its accepted row, or the part shared with it)."""
    shared = {key: row[key] for key in REJECTED_FROM_ACCEPTED}
    return {**shared, "rejected_at": rejected_at, "reason": reason, "detail": detail, "quote": quote}


def _parse_time(value, default: datetime) -> datetime:
    """`value` as a UTC time (naive means UTC), or `default` when it is not one or lies outside the
    store's DateTime64 range (which would store year 1 as 2001)."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return default
    return moment if STORABLE_YEARS[0] <= moment.year <= STORABLE_YEARS[1] else default
