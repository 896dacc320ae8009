-- Sandbox research outcome per report and research round (replaced per report partition).
CREATE TABLE IF NOT EXISTS research_results
(
    team_id UInt64,
    report_id String,
    research_round UInt32,
    status LowCardinality(String),
    sandbox LowCardinality(String),
    repository String,
    repository_ranking String,
    findings String,
    actionability LowCardinality(String),
    priority LowCardinality(String),
    reason String,
    log_key String,
    dagster_run_id String,
    finished_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (team_id, report_id, research_round)
