-- Latest title/summary and judgements per report (replaced per report partition). `safety` is
-- "safe" or "unsafe"; an unsafe report has the kind of manipulation and the offending fragment.
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
    generated_at DateTime64(3, 'UTC'),
    safety_kind LowCardinality(String),
    safety_quote String,
    actionability_reason String,
    priority_reason String,
    provider LowCardinality(String)
)
ENGINE = MergeTree
ORDER BY (team_id, report_id);
ALTER TABLE report_summaries ADD COLUMN IF NOT EXISTS safety_kind LowCardinality(String);
ALTER TABLE report_summaries ADD COLUMN IF NOT EXISTS safety_quote String;
ALTER TABLE report_summaries ADD COLUMN IF NOT EXISTS actionability_reason String;
ALTER TABLE report_summaries ADD COLUMN IF NOT EXISTS priority_reason String;
ALTER TABLE report_summaries ADD COLUMN IF NOT EXISTS provider LowCardinality(String)
