-- Append-only fact: which report a signal joined, and why. Counts and weights derive from it.
CREATE TABLE IF NOT EXISTS report_assignments
(
    team_id UInt64,
    signal_id String,
    batch_key String,
    seq UInt32,
    report_id String,
    decision LowCardinality(String),
    matched_signal_id String,
    similarity Float32,
    weight Float64,
    deleted UInt8,
    assigned_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (team_id, batch_key, seq)
