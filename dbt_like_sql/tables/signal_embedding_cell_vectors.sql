-- Derived from signal_embeddings for teams too large to search exactly (grouping.store, "cell search"):
-- each embedding again, at unit length and as 16-bit fixed point (component x 32767, rounded: within
-- 1.6e-5 of it), under the cell of its nearest centroid (signal_embedding_centroids), so that the rows
-- of a cell are contiguous in this table's order and a search reads only the cells near its probes.
-- Granules of 128 rows (about half a cell) rather than 8,192: a granule read is then mostly rows of a
-- chosen cell. Rebuilt batch by batch from signal_embeddings whenever
-- signal_embedding_cell_vector_batches says a batch is missing or stale, so every write here may be
-- repeated. Replaces signal_embedding_cells (float32 rows in large granules), which is dropped: its
-- cells are derived again here.
CREATE TABLE IF NOT EXISTS signal_embedding_cell_vectors
(
    team_id UInt64,
    model LowCardinality(String),
    cell UInt32,
    batch_key String,
    signal_id String,
    vector Array(Int16)
)
ENGINE = MergeTree
ORDER BY (team_id, model, cell, batch_key, signal_id)
SETTINGS index_granularity = 128;
DROP TABLE IF EXISTS signal_embedding_cells
