-- Derived from report_vector_deltas when a report's statistics are read (grouping.store.read_team): a
-- report's deltas of every batch up to and including batch_key, summed into one row, with the weights
-- still split by the signals' first batch (a weight reset applies when reading). A report as of before
-- a batch is its latest snapshot of an earlier batch plus its deltas after it, so the rows summed do not
-- grow with the report's history. Each row is complete on its own (a kill mid-insert leaves rows that
-- are right, or none); deriving a batch's deltas again first deletes the team's snapshots from that
-- batch on.
CREATE TABLE IF NOT EXISTS report_vector_snapshots
(
    team_id UInt64,
    report_id String,
    model LowCardinality(String),
    batch_key String,
    signal_count Int64,
    first_batch_keys Array(String),
    weights Array(Float64),
    vector_sum Array(Float64)
)
ENGINE = MergeTree
ORDER BY (team_id, report_id, model, batch_key)
SETTINGS index_granularity = 64
