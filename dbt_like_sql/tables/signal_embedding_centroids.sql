-- The cell centroids of a large team's embeddings (k-means on a sample, grouping.store): `trained_rows`
-- is how many embeddings the team had when they were trained, which also versions the cells derived
-- with them. Written in one insert, replaced whole when the team has grown past twice that size (RETRAIN_GROWTH in grouping/store.py).
CREATE TABLE IF NOT EXISTS signal_embedding_centroids
(
    team_id UInt64,
    model LowCardinality(String),
    trained_rows UInt64,
    cell UInt32,
    centroid Array(Float32)
)
ENGINE = MergeTree
ORDER BY (team_id, model, cell)
