-- One row per team, model and batch whose signal_embedding_cells are complete, written after them: the
-- centroids' version they were assigned with and a hash of the batch's signal ids. A batch without a
-- row, or whose row no longer matches, is derived again before the next cell search reads it.
CREATE TABLE IF NOT EXISTS signal_embedding_cell_batches
(
    team_id UInt64,
    model LowCardinality(String),
    batch_key String,
    trained_rows UInt64,
    ids_hash UInt64
)
ENGINE = MergeTree
ORDER BY (team_id, model, batch_key)
