-- Sandbox research outcome per report and research round (replaced per report partition): what the
-- agent found and how sure it is (`confidence` high | low). Priority and actionability are the
-- report judgement's (report_summaries); stores created earlier keep the agent's former columns, unread.
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
    reason String,
    log_key String,
    dagster_run_id String,
    finished_at DateTime64(3, 'UTC'),
    confidence LowCardinality(String)
)
ENGINE = MergeTree
ORDER BY (team_id, report_id, research_round);
ALTER TABLE research_results ADD COLUMN IF NOT EXISTS confidence LowCardinality(String)
