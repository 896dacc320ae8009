-- One embedding per accepted signal and model; semantic search filters on team and model.
CREATE TABLE IF NOT EXISTS signal_embeddings
(
    team_id UInt64,
    signal_id String,
    batch_key String,
    model LowCardinality(String),
    dimension UInt16,
    embedding Array(Float32),
    embedded_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (team_id, model, batch_key, signal_id)
