"""A report with its signals as one JSON document, and that document read back as signals to emit.

An imported report is not copied row by row: its signals are emitted again for the target team and
go through the normal ingestion path (gates, safety filter, embedding, grouping), so they land in
whatever report the target team's grouping decides. Each imported signal keeps its idempotency key
(or gets `import-<original signal id>`), so importing the same file twice emits nothing new.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from signals_assets.ingestion.validation import (
    MAX_IDEMPOTENCY_KEY_CHARS,
    DuplicateKey,
    SignalLimits,
    SignalValidationError,
    shown,
    unique_keys_object,
    validate_signal,
)
from signals_assets.storage.clickhouse import StoreSession
from signals_assets.storage.facts import current_assignments, signals_ever_in

FORMAT = "signals_assets.report"
VERSION = 1
MAX_SIGNALS = 100_000
# Informational fields of an exported signal, not part of what is emitted again.
_PROVENANCE_FIELDS = ("signal_id", "emitted_at")
_REPORT_FIELDS = (
    "team_id",
    "status",
    "title",
    "summary",
    "signal_count",
    "total_weight",
    "priority",
    "priority_reason",
    "actionability",
    "actionability_reason",
    "safety",
    "repository",
    "log_key",
)

_EVER_IN_REPORT = signals_ever_in("team_id = {team}", "({report})")  # read by id: the report's signals only
_SIGNALS_SQL = f"""
SELECT s.signal_id AS signal_id, s.source_product AS source_product, s.source_type AS source_type,
       s.source_id AS source_id, s.description AS description, s.weight AS weight, s.extra AS extra,
       s.idempotency_key AS idempotency_key, s.emitted_at AS emitted_at
FROM ({current_assignments(f"team_id = {{team}} AND signal_id IN ({_EVER_IN_REPORT})")}) AS a
INNER JOIN (
    SELECT * FROM signals WHERE team_id = {{team}} AND signal_id IN ({_EVER_IN_REPORT})
) AS s ON s.team_id = a.team_id AND s.signal_id = a.signal_id
WHERE a.report_id = {{report}} AND a.deleted = 0
ORDER BY a.first_position
"""


class ReportFileError(ValueError):
    """An import file that is not a valid report export; names the field and the rule."""


def export_report(db: StoreSession, team_id: int, report_id: str) -> dict:
    """The report (from the `reports` model) and its live signals; LookupError when the team has no such report."""
    rows = db.query(
        "SELECT * FROM reports WHERE team_id = {team} AND report_id = {report}", {"team": team_id, "report": report_id}
    )
    if not rows:
        raise LookupError(f"report {report_id} not found")
    row = rows[0]
    report = {"id": report_id, **{name: row[name] for name in _REPORT_FIELDS}}
    report["findings"] = json.loads(row["findings"] or "[]")
    signals = []
    for signal in db.query(_SIGNALS_SQL, {"team": team_id, "report": report_id}):
        signal["extra"] = json.loads(signal["extra"] or "{}")
        signal["idempotency_key"] = signal["idempotency_key"] or None
        signals.append(signal)
    return {"format": FORMAT, "version": VERSION, "report": report, "signals": signals}


def _fail(field: str, rule: str) -> ReportFileError:
    return ReportFileError(f"{field}: {rule}")


def import_payloads(document: Any, team_id: int, limits: SignalLimits) -> list[tuple[str, dict]]:
    """(original signal id, valid emit payload for team `team_id`) of each of the export's signals;
    ReportFileError naming the first broken rule (`signals[3].extra.url: is required`) otherwise."""
    if not isinstance(document, dict):
        raise _fail("file", f"must be a JSON object (a report export), got {shown(document)}")
    if document.get("format") != FORMAT:
        raise _fail("format", f"must be {FORMAT!r} (a file written by `signals export-report`)")
    version = document.get("version")
    if type(version) is not int or version != VERSION:  # not True or 1.0, which equal 1
        raise _fail("version", f"must be {VERSION}, got {shown(version)}")
    signals = document.get("signals")
    if not isinstance(signals, list) or not signals:
        raise _fail("signals", "must be a non-empty list")
    if len(signals) > MAX_SIGNALS:
        raise _fail("signals", f"must hold at most {MAX_SIGNALS} signals, got {len(signals)}")
    payloads = []
    for index, signal in enumerate(signals):
        if not isinstance(signal, dict):
            raise _fail(f"signals[{index}]", f"must be an object, got {shown(signal)}")
        original_id = signal.get("signal_id")
        if not isinstance(original_id, str) or not original_id:
            raise _fail(f"signals[{index}].signal_id", "must be a non-empty string")
        if "team_id" in signal:  # an export names no team: its signals are emitted for the importing one
            raise _fail(f"signals[{index}].team_id", "is not part of an export (the signals go to --team-id)")
        payload = {k: v for k, v in signal.items() if k not in _PROVENANCE_FIELDS}
        payload["team_id"] = team_id
        payload["idempotency_key"] = payload.get("idempotency_key") or import_key(original_id)
        try:
            valid = validate_signal(payload, limits)
        except SignalValidationError as error:
            raise _fail(f"signals[{index}].{error.field}", error.rule) from None
        payloads.append((original_id, dict(valid.__dict__)))
    return payloads


def import_key(original_id: str) -> str:
    """The idempotency key of an imported signal that had none: `import-<original id>`, or for an id that
    makes no key (too long: ids may have 200 characters, keys too; not printable) `import-sha256-<its
    SHA-256>`, so the key's rules never refuse a signal for its provenance."""
    key = f"import-{original_id}"
    if len(key) <= MAX_IDEMPOTENCY_KEY_CHARS and key.isprintable():
        return key
    return f"import-sha256-{hashlib.sha256(original_id.encode('utf-8', 'surrogatepass')).hexdigest()}"


def decode_report_file(data: bytes) -> Any:
    """Also for what json.loads raises besides JSONDecodeError: an integer past Python's digit limit
    (ValueError), nesting past the recursion limit (RecursionError)."""
    try:
        return json.loads(data, object_pairs_hook=unique_keys_object)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _fail("file", f"must be JSON: {error}") from None
    except DuplicateKey as error:
        raise _fail("file", str(error)) from None
    except (ValueError, RecursionError) as error:
        raise _fail("file", f"must be JSON ({type(error).__name__}: {str(error)[:120]})") from None
