"""The names and key formats of the two dynamic partition sets (the Dagster definitions are in
partitions.py): pure, so the stage packages that parse keys do not import Dagster.

Batch keys sort in claim order (UTC time of the claim, microseconds), so Dagster's insertion
order, lexical order and processing order agree. Keys avoid the characters Dagster reserves for
ranges and multi-partitions (`,` `|` `[` `]` `...`).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Sequence, TypeGuard

from signals_assets.ingestion.validation import SignalValidationError, check_team_id

SIGNAL_BATCHES = "signal_batches"
REPORTS = "reports"

_BATCH_KEY = re.compile(r"^b(\d{8})T(\d{6})(\d{6})Z$")
_BATCH_FORMAT = "b%Y%m%dT%H%M%S%fZ"
_REPORT_KEY = re.compile(r"^r([1-9][0-9]{0,19})-[0-9a-f]{16}$")  # one spelling per team: no leading zeros


class PartitionKeyError(ValueError):
    pass


def batch_key(claimed_at: datetime) -> str:
    return claimed_at.astimezone(timezone.utc).strftime(_BATCH_FORMAT)


def next_batch_key(now: datetime, last_key: str | None) -> str:
    """A key for a batch claimed at `now`, strictly after `last_key` even if the clock went back."""
    key = batch_key(now)
    if last_key and key <= last_key:
        key = batch_key(batch_time(last_key) + timedelta(microseconds=1))
    return key


def batch_time(key: str) -> datetime:
    """The claim time a batch key spells; PartitionKeyError for any other key (one added by hand to the
    partition set, such as one of a date that does not exist)."""
    try:
        if _BATCH_KEY.match(key):
            return datetime.strptime(key, _BATCH_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        pass
    raise PartitionKeyError(f"batch key {key!r} must be a UTC time like b20260101T120000000000Z")


def is_batch_key(key: object) -> TypeGuard[str]:
    """Whether `key` is a batch key: a string `batch_time` reads."""
    if not isinstance(key, str):
        return False
    try:
        batch_time(key)
    except PartitionKeyError:
        return False
    return True


def validate_report_key(key: str) -> str:
    report_team_id(key)
    return key


def report_team_id(key: str) -> int:
    match = _REPORT_KEY.match(key)
    if not match:
        raise PartitionKeyError(f"report key {key!r} must look like r<team_id>-<16 hex digits>")
    try:
        return check_team_id(int(match[1]))
    except SignalValidationError as error:
        raise PartitionKeyError(f"report key {key!r}: {error}") from None


def key_ordered_ranges(keys: Sequence[str], partition_order: Sequence[str]) -> list[tuple[str, str]]:
    """(first, last) partition ranges that cover `keys`, in key order, each holding no other of `keys`
    than its own. Dagster resolves a range by the set's insertion order (`partition_order`, holding every
    key), which is key order except where a retired partition was added back at the end: a range whose
    first key was added after its last holds nothing, and one across such a key holds it out of turn."""
    position = {key: index for index, key in enumerate(partition_order)}
    by_position = sorted(keys, key=position.__getitem__)
    next_in_set = dict(zip(by_position, by_position[1:]))
    ranges: list[tuple[str, str]] = []
    for key in sorted(keys):
        if ranges and next_in_set.get(ranges[-1][1]) == key:
            ranges[-1] = (ranges[-1][0], key)
        else:
            ranges.append((key, key))
    return ranges
