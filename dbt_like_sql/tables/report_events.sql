-- Append-only report lifecycle: every status change with its cause. The latest event per report
-- is its status. `source` names the partition that wrote it (batch key or report id) so each
-- writer can replace exactly its own events.
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
    at DateTime64(6, 'UTC')
)
ENGINE = MergeTree
ORDER BY (team_id, report_id, at, seq)
