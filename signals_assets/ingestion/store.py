"""The ingestion stage in the signals store: a batch's screened signals and their embeddings.

Each write replaces the batch's partition of its table, so re-running a batch is idempotent.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Sequence

from signals_assets.ingestion.screening import ScreenedBatch
from signals_assets.storage.clickhouse import StoreSession

if TYPE_CHECKING:
    import numpy

_STORED_IN_OTHER_BATCHES = "SELECT signal_id FROM signals WHERE signal_id IN {ids} AND batch_key != {batch}"
_BATCH_SIGNALS = "SELECT team_id, signal_id, description FROM signals WHERE batch_key = {batch} ORDER BY signal_id"
_BATCH_PARTITION = "batch_key = {batch}"


def stored_in_other_batches(db: StoreSession, signal_ids: list[str], batch: str) -> set[str]:
    """Those of `signal_ids` already accepted in another batch (duplicates to reject)."""
    return {row["signal_id"] for row in db.query(_STORED_IN_OTHER_BATCHES, {"ids": signal_ids, "batch": batch})}


def write_screened(db: StoreSession, batch: str, screened: ScreenedBatch) -> None:
    db.replace_partition("signals", _BATCH_PARTITION, screened.accepted, {"batch": batch})
    db.replace_partition("rejected_signals", _BATCH_PARTITION, screened.rejected, {"batch": batch})


def batch_signals(db: StoreSession, batch: str) -> list[dict]:
    """The batch's accepted signals: team_id, signal_id, description."""
    return db.query(_BATCH_SIGNALS, {"batch": batch})


def write_embeddings(
    db: StoreSession,
    batch: str,
    model: str,
    signals: list[dict],
    vectors: Sequence | numpy.ndarray,
    embedded_at: datetime,
) -> int:
    """One `signal_embeddings` row per signal and its vector; the number written."""
    rows = [
        {
            "team_id": s["team_id"],
            "signal_id": s["signal_id"],
            "batch_key": batch,
            "model": model,
            "dimension": len(vector),
            "embedding": vector,
            "embedded_at": embedded_at,
        }
        for s, vector in zip(signals, vectors)
    ]
    db.replace_partition("signal_embeddings", _BATCH_PARTITION, rows, {"batch": batch})
    return len(rows)
