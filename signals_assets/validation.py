"""Validation of one signal payload: the single rule set behind the emit facade, the CLI and ingestion.

Pure standard library (it sits on the emit facade's import path).

A payload is a dict with the fields of `emit_signal`. `None` for an optional field (`weight`,
`extra`, `idempotency_key`, an optional `extra` key) means "not given".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

# Token count is approximated as ceil(characters / 4) so no tokenizer is loaded at emit time; for
# English text this is close to (and usually above) the cl100k count.
MAX_DESCRIPTION_TOKENS = 8_000
CHARS_PER_TOKEN = 4
MAX_SOURCE_ID_CHARS = 512
MAX_IDEMPOTENCY_KEY_CHARS = 200
DEFAULT_WEIGHT = 0.5


class SignalValidationError(ValueError):
    """One broken rule: `field` names the offending field (`extra.<key>` inside extra)."""

    def __init__(self, field: str, rule: str):
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class ExtraField(NamedTuple):
    kind: str  # str (non-empty) | list (of strings) | int | bool | timestamp (ISO-8601 string)
    required: bool = True
    choices: tuple[str, ...] = ()


STR, LIST, INT, BOOL, TIMESTAMP = (ExtraField(kind) for kind in ("str", "list", "int", "bool", "timestamp"))
OPTIONAL_STR = ExtraField("str", required=False)
OPTIONAL_BOOL = ExtraField("bool", required=False)

_ERROR_TRACKING_EXTRA = {"fingerprint": STR, "host": OPTIONAL_STR, "is_dev_host": OPTIONAL_BOOL}

# (source_product, source_type) -> the `extra` keys it carries; any other key is rejected.
SOURCE_EXTRAS: dict[tuple[str, str], dict[str, ExtraField]] = {
    ("zendesk", "ticket"): {
        "url": STR, "type": STR, "tags": LIST, "created_at": TIMESTAMP, "priority": STR, "status": STR,
    },
    ("github", "issue"): {
        "html_url": STR, "number": INT, "labels": LIST, "created_at": TIMESTAMP, "updated_at": TIMESTAMP,
        "locked": BOOL, "state": STR, "author_login": OPTIONAL_STR, "author_association": OPTIONAL_STR,
    },
    ("linear", "issue"): {
        "url": STR, "identifier": STR, "number": INT, "priority": INT, "priority_label": STR, "labels": LIST,
        "state_name": STR, "state_type": STR, "team_name": STR, "created_at": TIMESTAMP, "updated_at": TIMESTAMP,
    },
    ("error_tracking", "issue_created"): _ERROR_TRACKING_EXTRA,
    ("error_tracking", "issue_reopened"): _ERROR_TRACKING_EXTRA,
    ("error_tracking", "issue_spiking"): _ERROR_TRACKING_EXTRA,
    ("session_replay", "session_problem"): {
        "session_id": STR, "segment_title": STR, "start_time": TIMESTAMP, "end_time": TIMESTAMP,
        "problem_type": ExtraField(
            "str", choices=("confusion", "abandonment", "blocking_exception", "non_blocking_exception", "failure")
        ),
        "distinct_id": STR,
    },
    ("llm_analytics", "evaluation_report"): {
        "evaluation_id": STR, "evaluation_name": STR, "evaluation_description": STR, "report_id": STR,
        "report_run_id": STR, "period_start": TIMESTAMP, "period_end": TIMESTAMP,
    },
}

SOURCE_PAIRS: list[str] = [f"{product}/{source_type}" for product, source_type in SOURCE_EXTRAS]

REQUIRED_FIELDS = ("team_id", "source_product", "source_type", "source_id", "description")
OPTIONAL_FIELDS = ("weight", "extra", "idempotency_key")


@dataclass(frozen=True)
class ValidSignal:
    team_id: int
    source_product: str
    source_type: str
    source_id: str
    description: str
    weight: float
    extra: dict
    idempotency_key: str | None


def approximate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def validate_signal(payload: dict) -> ValidSignal:
    """The payload as a `ValidSignal`, or `SignalValidationError` for the first broken rule."""
    if not isinstance(payload, dict):
        raise SignalValidationError("payload", f"must be an object, got {type(payload).__name__}")
    for name in sorted(payload, key=str):
        if name not in REQUIRED_FIELDS + OPTIONAL_FIELDS:
            raise SignalValidationError(str(name), "is not a known signal field")
    for name in REQUIRED_FIELDS:
        if payload.get(name) is None:
            raise SignalValidationError(name, "is required")

    team_id = payload["team_id"]
    if not _is_int(team_id) or team_id < 1:
        raise SignalValidationError("team_id", f"must be a positive integer, got {team_id!r}")
    product, source_type = payload["source_product"], payload["source_type"]
    extra_fields = _extra_fields(product, source_type)
    source_id = _non_empty_string("source_id", payload["source_id"])
    if len(source_id) > MAX_SOURCE_ID_CHARS:
        raise SignalValidationError("source_id", f"must be at most {MAX_SOURCE_ID_CHARS} characters, got {len(source_id)}")
    description = _non_empty_string("description", payload["description"])
    tokens = approximate_tokens(description)
    if tokens > MAX_DESCRIPTION_TOKENS:
        raise SignalValidationError(
            "description",
            f"must be at most {MAX_DESCRIPTION_TOKENS} tokens (approximated as characters / {CHARS_PER_TOKEN}), "
            f"got ~{tokens}",
        )
    weight = _weight(payload.get("weight"))
    extra = _valid_extra(f"{product}/{source_type}", payload.get("extra"), extra_fields)
    return ValidSignal(
        team_id=team_id,
        source_product=product,
        source_type=source_type,
        source_id=source_id,
        description=description,
        weight=weight,
        extra=extra,
        idempotency_key=_idempotency_key(payload.get("idempotency_key")),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _non_empty_string(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SignalValidationError(field, f"must be a non-empty string, got {value!r}")
    return value


def _extra_fields(product: Any, source_type: Any) -> dict[str, ExtraField]:
    products = sorted({p for p, _ in SOURCE_EXTRAS})
    if product not in products:
        raise SignalValidationError("source_product", f"must be one of {', '.join(products)}, got {product!r}")
    types = [t for p, t in SOURCE_EXTRAS if p == product]
    if source_type not in types:
        raise SignalValidationError("source_type", f"must be one of {', '.join(types)} for {product}, got {source_type!r}")
    return SOURCE_EXTRAS[(product, source_type)]


def _valid_extra(pair: str, extra: Any, fields: dict[str, ExtraField]) -> dict:
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise SignalValidationError("extra", f"must be an object, got {type(extra).__name__}")
    for key in sorted(extra, key=str):
        if key not in fields:
            raise SignalValidationError(f"extra.{key}", f"is not a known field for {pair} (known: {', '.join(fields)})")
    for key, spec in fields.items():
        value = extra.get(key)
        if value is None:
            if spec.required:
                raise SignalValidationError(f"extra.{key}", f"is required for {pair}")
            continue
        rule = _extra_rule(spec, value)
        if rule:
            raise SignalValidationError(f"extra.{key}", rule)
    return {key: value for key, value in extra.items() if value is not None}


def _extra_rule(spec: ExtraField, value: Any) -> str | None:
    """The broken rule for one extra value, or None when it is valid."""
    if spec.kind == "str":
        if not isinstance(value, str) or not value.strip():
            return "must be a non-empty string"
        if spec.choices and value not in spec.choices:
            return f"must be one of {', '.join(spec.choices)}, got {value!r}"
    elif spec.kind == "list":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return "must be a list of strings"
    elif spec.kind == "int":
        if not _is_int(value):
            return f"must be an integer, got {value!r}"
    elif spec.kind == "bool":
        if not isinstance(value, bool):
            return f"must be a boolean, got {value!r}"
    elif spec.kind == "timestamp":
        if not _is_timestamp(value):
            return f"must be an ISO-8601 timestamp, got {value!r}"
    return None


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        return False
    return True


def _weight(value: Any) -> float:
    if value is None:
        return DEFAULT_WEIGHT
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SignalValidationError("weight", f"must be a number, got {value!r}")
    if not 0 < value <= 1:  # also rejects NaN
        raise SignalValidationError("weight", f"must be in (0, 1], got {value!r}")
    return float(value)


def _idempotency_key(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SignalValidationError("idempotency_key", f"must be a string, got {value!r}")
    if not value.strip():
        raise SignalValidationError("idempotency_key", "must not be empty or whitespace only")
    if len(value) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise SignalValidationError(
            "idempotency_key", f"must be at most {MAX_IDEMPOTENCY_KEY_CHARS} characters, got {len(value)}"
        )
    if not value.isprintable():
        raise SignalValidationError("idempotency_key", "must be printable (no control characters)")
    return value
