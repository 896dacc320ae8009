-- One row per team, model and batch whose signal_embedding_cell_vectors are complete, written after
-- them: the centroids' version they were assigned with and a hash of the batch's signal ids. A batch
-- without a row, or whose row no longer matches, is derived again before the next cell search reads
-- it. Replaces signal_embedding_cell_batches, the markers of the dropped signal_embedding_cells.
CREATE TABLE IF NOT EXISTS signal_embedding_cell_vector_batches
(
    team_id UInt64,
    model LowCardinality(String),
    batch_key String,
    trained_rows UInt64,
    ids_hash UInt64
)
ENGINE = MergeTree
ORDER BY (team_id, model, batch_key);
DROP TABLE IF EXISTS signal_embedding_cell_batches
