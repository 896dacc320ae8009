-- Append-only report lifecycle: every status change with its cause. The latest event per report
-- is its status. `source` names the partition that wrote it (batch key or report id) so each
-- writer can replace exactly its own events. `weight_after_batch` is set by a weight reset (a
-- report judged not actionable): from then on only signals of later batches count toward its weight.
CREATE TABLE IF NOT EXISTS report_events
(
    team_id UInt64,
    report_id String,
    source LowCardinality(String),
    stage LowCardinality(String),
    seq UInt32,
    event LowCardinality(String),
    status LowCardinality(String),
    title String,
    summary String,
    signals_at_run UInt32,
    research_round UInt32,
    detail String,
    at DateTime64(6, 'UTC'),
    weight_after_batch String
)
ENGINE = MergeTree
ORDER BY (team_id, report_id, at, seq);
ALTER TABLE report_events ADD COLUMN IF NOT EXISTS weight_after_batch String
