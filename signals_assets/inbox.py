"""Claiming inbox objects into batches, and reading a batch back.

The object store is the source of truth, so no signal is lost or processed twice whatever the
timing:
- `inbox/<name>` is written once by the emit facade;
- a claim moves it to `claimed/<batch_key>/<name>` (a rename, or on S3 a conditional claim marker:
  two claimers can never both win)
  and records the batch manifest `batches/<batch_key>/manifest.json`;
- `buffered_signals` consolidates the claimed objects into the retained raw batch file
  `batches/<batch_key>/signals.jsonl` and only then deletes them.
A batch is *unfinished* while claimed objects remain, whatever crashed in between, so the next
sensor tick (or `signals process`) picks it up again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

from signals_assets.facade import INBOX_PREFIX as INBOX
from signals_assets.faults import pause_point
from signals_assets.objects import ObjectStore
from signals_assets.partitions import next_batch_key

CLAIMED = "claimed/"
BATCHES = "batches/"
MAX_BATCHES_PER_CLAIM = 10


def manifest_key(batch: str) -> str:
    return f"{BATCHES}{batch}/manifest.json"


def raw_batch_key(batch: str) -> str:
    return f"{BATCHES}{batch}/signals.jsonl"


def pending_inbox_count(store: ObjectStore) -> int:
    return len(store.list(INBOX))


def claim_batch(store: ObjectStore, batch: str, max_signals: int) -> list[str]:
    """Move up to `max_signals` inbox objects (oldest first) into batch `batch`."""
    names = []
    for key in store.list(INBOX, limit=max_signals):
        name = key[len(INBOX) :]
        if store.move(key, f"{CLAIMED}{batch}/{name}"):
            names.append(name)
    if names:
        pause_point("claim")  # moved, no manifest yet
        write_manifest(store, batch, names)
    return names


def write_manifest(store: ObjectStore, batch: str, names: Iterable[str]) -> None:
    body = {"batch_key": batch, "objects": sorted(names), "written_at": datetime.now(timezone.utc).isoformat()}
    store.put(manifest_key(batch), json.dumps(body, indent=1).encode())


@dataclass(frozen=True)
class ClaimResult:
    new_batches: list[str]
    claimed_signals: int
    last_batch: str | None


def claim_pending(
    store: ObjectStore, max_signals: int, last_batch: str | None, now: datetime | None = None
) -> ClaimResult:
    """Claim everything pending into batches of at most `max_signals`, a bounded number per call."""
    now = now or datetime.now(timezone.utc)
    batches, total = [], 0
    for _ in range(MAX_BATCHES_PER_CLAIM):
        batch = next_batch_key(now, last_batch)
        names = claim_batch(store, batch, max_signals)
        if not names:
            break
        batches.append(batch)
        total += len(names)
        last_batch = batch
        if len(names) < max_signals:
            break
    return ClaimResult(batches, total, last_batch)


def claim_all(store: ObjectStore, max_signals: int) -> list[str]:
    """Claim everything pending now, however many batches that takes (the CLI, not the sensor)."""
    batches, last = [], None
    while claim := claim_pending(store, max_signals, last).new_batches:
        batches += claim
        last = claim[-1]
    return batches


def unfinished_batches(store: ObjectStore) -> list[str]:
    """Batches whose claimed objects have not been consolidated yet, in key order."""
    return sorted({key[len(CLAIMED) :].split("/", 1)[0] for key in store.list(CLAIMED)})


def load_batch(store: ObjectStore, batch: str) -> list[tuple[str, bytes]]:
    """(object name, body) of every signal in the batch: the raw file once written, else the claims.

    A claim missing from the manifest (crash between move and manifest) is still included: the
    claimed folder is authoritative.
    """
    raw = raw_batch_key(batch)
    if store.exists(raw):
        lines = store.get(raw).decode().splitlines()
        return [(entry["object"], entry["body"].encode()) for entry in map(json.loads, lines) if entry]
    prefix = f"{CLAIMED}{batch}/"
    return [(key[len(prefix) :], store.get(key)) for key in store.list(prefix)]


def consolidate_batch(store: ObjectStore, batch: str, objects: list[tuple[str, bytes]]) -> None:
    """Write the retained raw batch file, then remove the claimed objects it now holds."""
    raw = raw_batch_key(batch)
    if not store.exists(raw):
        lines = [json.dumps({"object": name, "body": body.decode("utf-8", "replace")}) for name, body in objects]
        store.put(raw, ("\n".join(lines) + "\n").encode())
        if not store.exists(manifest_key(batch)):
            write_manifest(store, batch, [name for name, _ in objects])
    for name, _ in objects:
        store.delete(f"{CLAIMED}{batch}/{name}")
