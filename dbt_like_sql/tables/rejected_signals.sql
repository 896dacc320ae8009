-- Signals refused at processing time (duplicate, team gate, safety filter, malformed; an embedding the
-- server refused: embedding_refused), kept with the reason.
CREATE TABLE IF NOT EXISTS rejected_signals
(
    team_id UInt64,
    signal_id String,
    batch_key String,
    source_product LowCardinality(String),
    source_type LowCardinality(String),
    source_id String,
    description String,
    reason LowCardinality(String),
    detail String,
    quote String,
    rejected_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (team_id, batch_key, signal_id)
