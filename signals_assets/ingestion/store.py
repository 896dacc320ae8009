"""The ingestion stage in the signals store: a batch's screened signals and their embeddings.

Each write replaces the batch's partition of its table, so re-running a batch is idempotent. A signal
whose text the embedding server refuses is moved from `signals` to `rejected_signals` by the embedding
step (`reject_refused`); re-running the whole batch screens it again, and the embedding step moves it again.
"""

from __future__ import annotations

from collections import Counter
from itertools import groupby
from typing import TYPE_CHECKING, Mapping, Sequence

from signals_assets.ingestion.screening import ScreenedBatch, rejected_row
from signals_assets.partition_keys import batch_time
from signals_assets.storage.clickhouse import StoreSession

if TYPE_CHECKING:
    import numpy

_STORED_IN_OTHER_BATCHES = (
    "SELECT signal_id, min(batch_key) AS earliest FROM signals WHERE signal_id IN {ids} AND batch_key != {batch} "
    "GROUP BY signal_id"
)
_RANGE_SIGNALS = (
    "SELECT batch_key, team_id, signal_id, source_product, source_type, source_id, description FROM signals "
    "WHERE batch_key IN {batches} ORDER BY batch_key, signal_id"
)
_BATCH_PARTITION = "batch_key = {batch}"
_RANGE_PARTITIONS = "batch_key IN {batches}"
EMBEDDING_REFUSED = "embedding_refused"  # the rejection reason of a signal whose text the embedding server refused
_REFUSED_SIGNALS = "batch_key = {batch} AND signal_id IN {ids}"
_REFUSED_REJECTIONS = f"{_REFUSED_SIGNALS} AND reason = {{reason}}"
_EMBEDDED_SIGNALS_REFUSALS = "batch_key IN {batches} AND signal_id IN {ids} AND reason = {reason}"


def stored_in_other_batches(db: StoreSession, signal_ids: list[str], batch: str) -> dict[str, str]:
    """Those of `signal_ids` already accepted in another batch (duplicates to reject), each with the
    earliest such batch."""
    rows = db.query(_STORED_IN_OTHER_BATCHES, {"ids": signal_ids, "batch": batch})
    return {row["signal_id"]: row["earliest"] for row in rows}


def write_screened(db: StoreSession, batch: str, screened: ScreenedBatch) -> ScreenedBatch:
    """Write the batch's partitions; what was written: `screened` less the signals another batch
    accepted meanwhile, rejected as duplicates.

    The check and the write share the session. On chdb a session is exclusive, so no other batch
    accepts one of these ids in between. A ClickHouse server has no such lock: two batches screened
    at once may both write an id, and then the later batch by key gives it up to the earlier one,
    which keeps it whichever wrote first (each looks again after its own write)."""
    screened = screened.with_duplicates(stored_in_other_batches(db, _ids(screened.accepted), batch), batch_time(batch))
    _replace(db, batch, screened)
    earlier = {
        signal_id: other
        for signal_id, other in stored_in_other_batches(db, _ids(screened.accepted), batch).items()
        if other < batch
    }
    if earlier:
        screened = screened.with_duplicates(earlier, batch_time(batch))
        _replace(db, batch, screened)
    return screened


def _ids(rows: list[dict]) -> list[str]:
    return [row["signal_id"] for row in rows]


def _replace(db: StoreSession, batch: str, screened: ScreenedBatch) -> None:
    db.replace_partition("signals", _BATCH_PARTITION, screened.accepted, {"batch": batch})
    db.replace_partition("rejected_signals", _BATCH_PARTITION, screened.rejected, {"batch": batch})


def range_signals(db: StoreSession, batches: Sequence[str]) -> list[dict]:
    """The accepted signals of `batches` (by batch, then signal): batch_key, team_id, signal_id, their source
    and description."""
    return db.query(_RANGE_SIGNALS, {"batches": list(batches)})


def reject_refused(db: StoreSession, signals: list[dict], refused: Mapping[int, str]) -> Counter[str]:
    """Move the signals of `signals` (from `range_signals`) whose index `refused` holds, with why, from
    `signals` to `rejected_signals` as `embedding_refused`; the number moved per batch. The rejection is
    written before the signal is removed, replacing one an interrupted move left, so a kill loses nothing
    (`write_embeddings` removes it again if a re-execution embeds the text)."""
    moved = [(signals[number], reason) for number, reason in sorted(refused.items())]  # in batch order, as `signals`
    for batch, pairs in groupby(moved, key=lambda pair: pair[0]["batch_key"]):
        rejected = [rejected_row(signal, batch_time(batch), EMBEDDING_REFUSED, reason) for signal, reason in pairs]
        params = {"batch": batch, "ids": [row["signal_id"] for row in rejected], "reason": EMBEDDING_REFUSED}
        db.replace_partition("rejected_signals", _REFUSED_REJECTIONS, rejected, params)
        db.delete_where("signals", _REFUSED_SIGNALS, params)
    return Counter(signals[number]["batch_key"] for number in refused)


def write_embeddings(
    db: StoreSession, batches: Sequence[str], model: str, signals: list[dict], vectors: Sequence | numpy.ndarray
) -> dict[str, int]:
    """One `signal_embeddings` row per signal of `batches` (from `range_signals`) and its vector, with one
    statement per kind for the whole range (the rows as RowBinary); the number written per batch. A move to
    `embedding_refused` cut short between its two statements (`reject_refused`) left a rejection beside the
    signal: a re-execution that embeds the text now keeps the signal, so that rejection goes."""
    rows = [
        {
            "team_id": s["team_id"],
            "signal_id": s["signal_id"],
            "batch_key": s["batch_key"],
            "model": model,
            "dimension": len(vector),
            "embedding": vector,
            "embedded_at": batch_time(s["batch_key"]),
        }
        for s, vector in zip(signals, vectors)
    ]
    db.replace_partition("signal_embeddings", _RANGE_PARTITIONS, rows, {"batches": list(batches)}, binary=True)
    if signals:
        refusals = {"batches": list(batches), "ids": [s["signal_id"] for s in signals], "reason": EMBEDDING_REFUSED}
        db.delete_where("rejected_signals", _EMBEDDED_SIGNALS_REFUSALS, refusals)
    written = Counter(s["batch_key"] for s in signals)
    return {batch: written[batch] for batch in batches}
