-- Derived from signal_embeddings for teams too large to search exactly (grouping.store, "cell search"):
-- each embedding again (scaled to unit length), under the cell of its nearest centroid (signal_embedding_centroids), so that the
-- rows of a cell are contiguous in this table's order and a search reads only the cells near its
-- probes. Rebuilt batch by batch from signal_embeddings whenever signal_embedding_cell_batches says a
-- batch is missing or stale, so every write here may be repeated.
CREATE TABLE IF NOT EXISTS signal_embedding_cells
(
    team_id UInt64,
    model LowCardinality(String),
    cell UInt32,
    batch_key String,
    signal_id String,
    embedding Array(Float32)
)
ENGINE = MergeTree
ORDER BY (team_id, model, cell, batch_key, signal_id)
