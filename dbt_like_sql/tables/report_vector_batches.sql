-- One row per team and batch whose report_vector_deltas are complete, written after them: a hash of
-- the batch's report_assignments rows they were derived from. A batch whose assignments hash
-- differs (or that has no row) is derived again before the next grouping reads the deltas.
CREATE TABLE IF NOT EXISTS report_vector_batches
(
    team_id UInt64,
    batch_key String,
    assignments_hash UInt64
)
ENGINE = MergeTree
ORDER BY (team_id, batch_key)
