"""Validation of one signal payload: the single rule set behind the emit facade, the CLI and ingestion.

Pure standard library (it sits on the emit facade's import path).

A payload is a dict with the fields of `emit_signal`. `None` for an optional field (`weight`,
`extra`, `idempotency_key`, an optional `extra` key) means "not given".
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
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
# Every `team_id` column of the store is UInt64 (dbt_like_sql/tables): a larger id would wrap around
# into another team's.
MAX_TEAM_ID = 2**64 - 1
# `extra` integers are stored through JSON and read by tools that use signed 64-bit integers.
MAX_EXTRA_INT = 2**63 - 1
# Part of `max_signal_bytes` kept free for the inbox record's envelope (signal id, emitted_at), so
# every record the facade writes fits the inbox reader's limit.
RECORD_ENVELOPE_BYTES = 512
SHOWN_VALUE_CHARS = 40
# Lone surrogates (how Python carries undecodable bytes of CLI arguments and file names) cannot be
# encoded for the store; NUL truncates text in C-based tools and terminals.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class SignalLimits:
    """Size limits of one signal (configurable: settings.py, `SIGNALS_MAX_*`)."""

    max_signal_bytes: int = 256 * 1024  # the inbox record, as UTF-8 JSON
    max_extra_bytes: int = 64 * 1024  # `extra`, as UTF-8 JSON
    max_extra_depth: int = 4  # `extra` itself is depth 1, a list inside it depth 2
    max_extra_keys: int = 64  # object keys at every depth of `extra`


DEFAULT_LIMITS = SignalLimits()


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
        "url": STR,
        "type": STR,
        "tags": LIST,
        "created_at": TIMESTAMP,
        "priority": STR,
        "status": STR,
    },
    ("github", "issue"): {
        "html_url": STR,
        "number": INT,
        "labels": LIST,
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
        "locked": BOOL,
        "state": STR,
        "author_login": OPTIONAL_STR,
        "author_association": OPTIONAL_STR,
    },
    ("linear", "issue"): {
        "url": STR,
        "identifier": STR,
        "number": INT,
        "priority": INT,
        "priority_label": STR,
        "labels": LIST,
        "state_name": STR,
        "state_type": STR,
        "team_name": STR,
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    },
    ("error_tracking", "issue_created"): _ERROR_TRACKING_EXTRA,
    ("error_tracking", "issue_reopened"): _ERROR_TRACKING_EXTRA,
    ("error_tracking", "issue_spiking"): _ERROR_TRACKING_EXTRA,
    ("session_replay", "session_problem"): {
        "session_id": STR,
        "segment_title": STR,
        "start_time": TIMESTAMP,
        "end_time": TIMESTAMP,
        "problem_type": ExtraField(
            "str", choices=("confusion", "abandonment", "blocking_exception", "non_blocking_exception", "failure")
        ),
        "distinct_id": STR,
    },
    ("llm_analytics", "evaluation_report"): {
        "evaluation_id": STR,
        "evaluation_name": STR,
        "evaluation_description": STR,
        "report_id": STR,
        "report_run_id": STR,
        "period_start": TIMESTAMP,
        "period_end": TIMESTAMP,
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


def shown(value: Any) -> str:
    """A bad value for an error message, cut short: a message never carries a whole record."""
    if isinstance(value, str):
        return repr(value[:SHOWN_VALUE_CHARS]) + ("…" if len(value) > SHOWN_VALUE_CHARS else "")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


def check_team_id(value: Any) -> int:
    """`value` as a team id: an integer (not a bool) from 1 to MAX_TEAM_ID; else SignalValidationError."""
    if not _is_int(value) or not 1 <= value <= MAX_TEAM_ID:
        raise SignalValidationError("team_id", f"must be an integer from 1 to {MAX_TEAM_ID}, got {shown(value)}")
    return value


def folder_team_id(folder: str) -> int | None:
    """The team whose inbox folder is named `folder`: only the id as the facade writes it (ASCII digits,
    no leading zero, 1 to MAX_TEAM_ID) names one, so no folder name can fail a reader ("²" is a digit to
    `isdigit` but no integer to `int`, `01` would be a second folder of team 1, and a name of thousands
    of digits is no integer `int` parses); else None."""
    if not (folder.isascii() and folder.isdecimal()) or folder.startswith("0") or len(folder) > len(str(MAX_TEAM_ID)):
        return None
    team = int(folder)
    return team if team <= MAX_TEAM_ID else None


def storable_text_rule(text: str) -> str | None:
    """Why `text` cannot be stored as it is (a lone surrogate or a NUL), or None."""
    bad = _UNSTORABLE.search(text)
    if bad is None:
        return None
    if bad.group() == "\x00":
        return f"must not contain NUL characters (found at character {bad.start()})"
    return (
        f"must be valid UTF-8 text, found an undecodable byte or lone surrogate "
        f"(U+{ord(bad.group()):04X}) at character {bad.start()}"
    )


def storable_text(text: str) -> str:
    """`text` with lone surrogates and NULs replaced by U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text)


def validate_signal(payload: dict, limits: SignalLimits = DEFAULT_LIMITS) -> ValidSignal:
    """The payload as a `ValidSignal`, or `SignalValidationError` for the first broken rule."""
    if not isinstance(payload, dict):
        raise SignalValidationError("payload", f"must be an object, got {type(payload).__name__}")
    unknown = [name for name in payload if name not in REQUIRED_FIELDS + OPTIONAL_FIELDS]
    if unknown:
        raise _unknown_key("", min(unknown, key=str), "is not a known signal field")
    for name in REQUIRED_FIELDS:
        if payload.get(name) is None:
            raise SignalValidationError(name, "is required")

    team_id = check_team_id(payload["team_id"])
    product, source_type = payload["source_product"], payload["source_type"]
    extra_fields = _extra_fields(product, source_type)
    source_id = _text("source_id", payload["source_id"])
    if len(source_id) > MAX_SOURCE_ID_CHARS:
        raise SignalValidationError(
            "source_id", f"must be at most {MAX_SOURCE_ID_CHARS} characters, got {len(source_id)}"
        )
    description = _text("description", payload["description"])
    tokens = approximate_tokens(description)
    if tokens > MAX_DESCRIPTION_TOKENS:
        raise SignalValidationError(
            "description",
            f"must be at most {MAX_DESCRIPTION_TOKENS} tokens (approximated as characters / {CHARS_PER_TOKEN}), "
            f"got ~{tokens}",
        )
    weight = _weight(payload.get("weight"))
    extra = _valid_extra(f"{product}/{source_type}", payload.get("extra"), extra_fields, limits)
    signal = ValidSignal(
        team_id=team_id,
        source_product=product,
        source_type=source_type,
        source_id=source_id,
        description=description,
        weight=weight,
        extra=extra,
        idempotency_key=_idempotency_key(payload.get("idempotency_key")),
    )
    allowed = limits.max_signal_bytes - RECORD_ENVELOPE_BYTES
    size = json_size(signal.__dict__)
    if size > allowed:
        raise SignalValidationError(
            "signal",
            f"must be at most {allowed} bytes as JSON ({limits.max_signal_bytes} minus "
            f"{RECORD_ENVELOPE_BYTES} for the envelope), got {size}",
        )
    return signal


class DuplicateKey(ValueError):
    """A JSON object holding one key twice: readers disagree on which value counts (Python's the last)."""

    def __init__(self, key: str):
        super().__init__(f"must not hold the key {shown(key)} twice in one object")


def unique_keys_object(pairs: list[tuple[str, Any]]) -> dict:
    """json.loads' `object_pairs_hook`: the object, or DuplicateKey."""
    value = {}
    for key, item in pairs:
        if key in value:
            raise DuplicateKey(key)
        value[key] = item
    return value


UTF8_BOM = b"\xef\xbb\xbf"
# UTF-32's little-endian mark starts like UTF-16's.
WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
BOM_RULE = "a byte order mark is allowed only at the start of a file or an inbox object"


def without_utf8_bom(data: bytes) -> bytes:
    """`data`, the start of a file or an inbox object, without the UTF-8 byte order mark Windows tools
    and some editors write there (JSON parsers may ignore it). Every entry that reads such a start
    (emit-file, the inbox) takes this one decision; a mark anywhere else is an error."""
    return data.removeprefix(UTF8_BOM)


def decode_json_object(data: bytes | str, field: str) -> dict:
    """`data` (UTF-8) as a JSON object, or SignalValidationError naming `field`; also for what json.loads
    raises besides JSONDecodeError (an integer past Python's digit limit, nesting past the recursion limit)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, object_pairs_hook=unique_keys_object)
    except UnicodeDecodeError as error:
        if isinstance(data, bytes) and data.startswith(WIDE_BOMS):
            raise SignalValidationError(field, "must be UTF-8, found a UTF-16 or UTF-32 byte order mark") from None
        raise SignalValidationError(field, f"must be UTF-8, found an invalid byte at offset {error.start}") from None
    except DuplicateKey as error:
        raise SignalValidationError(field, str(error)) from None
    except json.JSONDecodeError as error:
        raise SignalValidationError(field, _json_error_rule(error)) from None
    except (ValueError, RecursionError) as error:
        raise SignalValidationError(field, f"must be JSON ({type(error).__name__}: {str(error)[:120]})") from None
    if not isinstance(value, dict):
        raise SignalValidationError(field, f"must be a JSON object, got {type(value).__name__}")
    return value


def _json_error_rule(error: json.JSONDecodeError) -> str:
    """The rule a JSON text broke; the character it stopped at named when that tells why: a byte order
    mark past the start, or NUL, which UTF-16 and UTF-32 text holds beside every ASCII character."""
    found = error.doc[error.pos : error.pos + 1]
    if found == "\ufeff":
        return f"must be JSON, found U+FEFF at character {error.pos}: {BOM_RULE}"
    if found == "\x00":
        return f"must be JSON in UTF-8, found NUL at character {error.pos} (UTF-16 or UTF-32 text?)"
    return f"must be JSON (JSONDecodeError: {str(error)[:120]})"


def json_size(value: Any) -> int:
    """Bytes of `value` as UTF-8 JSON, the way inbox records are written."""
    return len(json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SignalValidationError(field, f"must be a non-empty string, got {shown(value)}")
    rule = storable_text_rule(value) or _visible_rule(value)
    if rule:
        raise SignalValidationError(field, rule)
    return value


INVISIBLE_RULE = "must contain a visible character (not only spaces, control, format or zero-width characters)"


def _visible_rule(text: str) -> str | None:
    """INVISIBLE_RULE when `text` shows as nothing: separators, control and format characters (zero-width,
    bidi, byte order mark), combining marks with no base. `str.strip` leaves all but the separators."""
    if any(not unicodedata.category(char).startswith(("C", "Z", "M")) for char in text):
        return None
    return INVISIBLE_RULE


def _unknown_key(prefix: str, key: Any, rule: str) -> SignalValidationError:
    """The error for an unknown key, named in the field when it is short and printable."""
    if isinstance(key, str) and key.isprintable() and 0 < len(key) <= SHOWN_VALUE_CHARS:
        return SignalValidationError(f"{prefix}{key}", rule)
    return SignalValidationError(prefix.rstrip(".") or "payload", f"has a key {shown(key)} that {rule}")


def _extra_fields(product: Any, source_type: Any) -> dict[str, ExtraField]:
    products = sorted({p for p, _ in SOURCE_EXTRAS})
    if product not in products:
        raise SignalValidationError("source_product", f"must be one of {', '.join(products)}, got {shown(product)}")
    types = [t for p, t in SOURCE_EXTRAS if p == product]
    if source_type not in types:
        raise SignalValidationError(
            "source_type", f"must be one of {', '.join(types)} for {product}, got {shown(source_type)}"
        )
    return SOURCE_EXTRAS[(product, source_type)]


def _valid_extra(pair: str, extra: Any, fields: dict[str, ExtraField], limits: SignalLimits) -> dict:
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise SignalValidationError("extra", f"must be an object, got {type(extra).__name__}")
    shape = _extra_shape_rule(extra, limits)
    if shape:
        raise SignalValidationError("extra", shape)
    unknown = [key for key in extra if key not in fields]
    if unknown:
        raise _unknown_key(
            "extra.", min(unknown, key=str), f"is not a known field for {pair} (known: {', '.join(fields)})"
        )
    for key, spec in fields.items():
        value = extra.get(key)
        if value is None:
            if spec.required:
                raise SignalValidationError(f"extra.{key}", f"is required for {pair}")
            continue
        rule = _extra_rule(spec, value)
        if rule:
            raise SignalValidationError(f"extra.{key}", rule)
    valid = {key: value for key, value in extra.items() if value is not None}
    size = json_size(valid)
    if size > limits.max_extra_bytes:
        raise SignalValidationError("extra", f"must be at most {limits.max_extra_bytes} bytes as JSON, got {size}")
    return valid


def _extra_shape_rule(extra: dict, limits: SignalLimits) -> str | None:
    """Why `extra` is too deep, has too many keys or is too big, or None.

    Walked without recursion and stopped as soon as a limit is passed, so a huge or cyclic value
    costs no more than the limits; the size counted is a lower bound of its JSON."""
    too_big = f"must be at most {limits.max_extra_bytes} bytes as JSON, got more"
    keys = size = 0
    pending: list[tuple[Any, int]] = [(extra, 1)]
    while pending:
        container, depth = pending.pop()
        if depth > limits.max_extra_depth:
            return f"must be nested at most {limits.max_extra_depth} levels deep"
        size += 2 + len(container)  # brackets and separators
        if isinstance(container, dict):
            keys += len(container)
            if keys > limits.max_extra_keys:
                return f"must have at most {limits.max_extra_keys} keys (counted at every depth)"
            size += sum(len(key) + 3 for key in container if isinstance(key, str))
            children = container.values()
        else:
            children = container
        if size > limits.max_extra_bytes:
            return too_big
        for child in children:
            if isinstance(child, str):
                size += len(child) + 2
            elif isinstance(child, (dict, list, tuple)):
                pending.append((child, depth + 1))
        if size > limits.max_extra_bytes:
            return too_big
    return None


def _extra_rule(spec: ExtraField, value: Any) -> str | None:
    """The broken rule for one extra value, or None when it is valid."""
    if spec.kind == "str":
        if not isinstance(value, str) or not value.strip():
            return "must be a non-empty string"
        if spec.choices and value not in spec.choices:
            return f"must be one of {', '.join(spec.choices)}, got {shown(value)}"
        return storable_text_rule(value) or _visible_rule(value)
    if spec.kind == "list":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return "must be a list of strings"
        return next(filter(None, map(storable_text_rule, value)), None)
    if spec.kind == "int":
        if not _is_int(value):
            return f"must be an integer, got {shown(value)}"
        if abs(value) > MAX_EXTRA_INT:
            return f"must be an integer within ±{MAX_EXTRA_INT}, got {shown(value)}"
    elif spec.kind == "bool":
        if not isinstance(value, bool):
            return f"must be a boolean, got {shown(value)}"
    elif spec.kind == "timestamp":
        if not _is_timestamp(value):
            return f"must be an ISO-8601 timestamp, got {shown(value)}"
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
        raise SignalValidationError("weight", f"must be a number, got {shown(value)}")
    if not 0 < value <= 1:  # also rejects NaN
        raise SignalValidationError("weight", f"must be in (0, 1], got {shown(value)}")
    return float(value)


def _idempotency_key(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SignalValidationError("idempotency_key", f"must be a string, got {shown(value)}")
    if not value.strip():
        raise SignalValidationError("idempotency_key", "must not be empty or whitespace only")
    if len(value) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise SignalValidationError(
            "idempotency_key", f"must be at most {MAX_IDEMPOTENCY_KEY_CHARS} characters, got {len(value)}"
        )
    if not value.isprintable():
        raise SignalValidationError("idempotency_key", "must be printable (no control characters)")
    return value
