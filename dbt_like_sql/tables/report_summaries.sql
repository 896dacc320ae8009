-- Latest title/summary and judgements per report (replaced per report partition).
CREATE TABLE IF NOT EXISTS report_summaries
(
    team_id UInt64,
    report_id String,
    title String,
    summary String,
    central_signal_ids Array(String),
    signal_count UInt32,
    safety LowCardinality(String),
    actionability LowCardinality(String),
    priority LowCardinality(String),
    generated_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (team_id, report_id)
