-- Derived from report_assignments and signal_embeddings, per batch (grouping.store.write_vector_deltas):
-- how each report's members changed in that batch, +1 and +embedding for a signal that joined it, -1 and
-- -embedding for one that left it (moved or deleted). A report's size, weight and vector sum as of
-- before a batch are the sums of its rows of earlier batches, so grouping reads a few rows per report
-- instead of its members' embeddings. Split by the signals' first batch so that a weight reset (only
-- signals first grouped after a batch count) applies when reading. Rows are about 3 KB and reads
-- pick a few hundred reports, hence the small granules.
CREATE TABLE IF NOT EXISTS report_vector_deltas
(
    team_id UInt64,
    report_id String,
    model LowCardinality(String),
    batch_key String,
    first_batch_key String,
    signal_count Int64,
    weight Float64,
    vector_sum Array(Float64)
)
ENGINE = MergeTree
ORDER BY (team_id, report_id, model, batch_key, first_batch_key)
SETTINGS index_granularity = 256
