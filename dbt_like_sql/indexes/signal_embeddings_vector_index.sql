-- Optional HNSW index for semantic search (SIGNALS_CLICKHOUSE_VECTOR_INDEX=hnsw). It serves queries of
-- the form ORDER BY cosineDistance(embedding, <vector>) LIMIT k; every stored embedding must have
-- {dimensions} elements once it exists. Needs ClickHouse 25.8+ (chdb 4.4 ships 26.9).
-- bf16 vectors, 16 neighbours per node, a candidate list of 64 while building: about a quarter of the
-- build time of ClickHouse's defaults (32, 128), recall@10 measured in benchmarks/grouping_scale.py.
ALTER TABLE signal_embeddings
    ADD INDEX IF NOT EXISTS embedding_hnsw embedding TYPE vector_similarity('hnsw', 'cosineDistance', {dimensions}, 'bf16', 16, 64)
