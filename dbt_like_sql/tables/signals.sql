-- Accepted signals, one row per signal, written by buffered_signals (delete-then-insert per batch); one
-- whose text the embedding server refuses is moved to rejected_signals by signal_embeddings.
CREATE TABLE IF NOT EXISTS signals
(
    team_id UInt64,
    signal_id String,
    batch_key String,
    source_product LowCardinality(String),
    source_type LowCardinality(String),
    source_id String,
    description String,
    weight Float64,
    extra String,
    idempotency_key String,
    emitted_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (team_id, batch_key, signal_id)
