"""Bounded partition sets: which `signal_batches` and `reports` partitions to retire.

Dagster keeps every dynamic partition until it is deleted, and its UI and partition queries slow
down long before the ~100k partitions per asset it supports. Each set therefore keeps only what
can still be needed:

- a batch is retired once it is finished (grouped), not parked, and older (by its key) than
  SIGNALS_RETIRE_BATCHES_AFTER_DAYS (by default the grouping window: its signals no longer take
  part in grouping new ones);
- a report is retired once it is closed (no research round pending, parked or running) and its
  last materialisation is older than SIGNALS_RETIRE_REPORTS_AFTER_DAYS;
- whatever their age, each set keeps at most SIGNALS_MAX_RETAINED_PARTITIONS partitions besides
  the open ones (the oldest closed ones go first).
Nothing open is ever retired: an unfinished or parked batch, a report with a pending or parked
promotion, any partition a queued or running run targets. While a backfill is in progress, or a
run's partitions cannot be told, nothing is retired at all.

Retiring removes the partition key only. The data stays in the store (the CLI reads the store,
not the partitions), the materialisation history stays in the event log, and a retired
partition comes back as soon as it has work again: a report promoted again is re-added by the
promotion sensor like any new report, `signals regroup` re-adds the batches it replays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from signals_assets.partition_keys import PartitionKeyError, batch_time

DAY_SECONDS = 86400.0
# Deletions per set per tick: the daemon deletes keys one by one (~50 ms each on a loaded sqlite
# instance), and a tick must stay short; 250 per set every 5 minutes is 72,000 a day.
MAX_RETIRED_PER_TICK = 250


@dataclass(frozen=True)
class RetentionPolicy:
    batches_after_days: int
    reports_after_days: int
    max_retained: int


def _old_by_count(keys: Sequence[str], max_retained: int) -> set[str]:
    """Keys beyond the newest `max_retained` (Dagster lists a set in the order keys were added)."""
    return set(keys[: max(0, len(keys) - max_retained)])


def retirable_batches(
    keys: Sequence[str],
    now: float,
    policy: RetentionPolicy,
    busy: set[str],
    closed: Callable[[str], bool],
    limit: int = MAX_RETIRED_PER_TICK,
) -> list[str]:
    """Batches to retire, oldest first: old by key time or by count, not `busy` (targeted by a run),
    and `closed` (finished, not parked; asked only of old ones, as it reads the object store)."""
    cutoff = now - policy.batches_after_days * DAY_SECONDS
    by_count = _old_by_count(keys, policy.max_retained)
    retired: list[str] = []
    for key in keys:
        if len(retired) >= limit:
            break
        try:
            old = batch_time(key).timestamp() < cutoff
        except PartitionKeyError:
            continue  # not a key this code location made: left alone
        if (old or key in by_count) and key not in busy and closed(key):
            retired.append(key)
    return retired


def retirable_reports(
    keys: Sequence[str],
    policy: RetentionPolicy,
    busy: set[str],
    materialized_ever: set[str],
    materialized_recently: set[str],
    limit: int = MAX_RETIRED_PER_TICK,
) -> list[str]:
    """Reports to retire, in the order they were added: not `busy` (open promotion or targeted by a
    run), and either materialised before the cut-off and not since, or old by count."""
    by_count = _old_by_count(keys, policy.max_retained)
    retired: list[str] = []
    for key in keys:
        if len(retired) >= limit:
            break
        if key in busy:
            continue
        if key in by_count or (key in materialized_ever and key not in materialized_recently):
            retired.append(key)
    return retired
