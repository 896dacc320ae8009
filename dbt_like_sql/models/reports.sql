-- One row per report that has lifecycle events: its latest state (the fact `latest_report_states` of
-- signals_assets/storage/facts.py), its signal count and weight from the live assignments, and its
-- latest summary and research outcome. Priority and actionability are the report judgement's. The
-- weight counts only signals of batches after the latest weight reset (a report judged not actionable).
-- materialized: view
WITH
    events AS (
        SELECT
            team_id,
            report_id,
            status AS latest_status,
            signals_at_run AS latest_signals_at_run,
            detail AS latest_detail,
            title AS event_title,
            summary AS event_summary,
            research_round AS max_research_round,
            created_at,
            promoted_at,
            updated_at,
            weight_after_batch
        FROM {{ fact('latest_report_states') }}
    ),
    assignments AS (
        SELECT a.team_id AS team_id, a.report_id AS report_id, count() AS live_signals,
               sumIf(a.weight, a.first_batch_key > r.weight_after_batch) AS live_weight
        FROM {{ ref('current_assignments') }} AS a
        LEFT JOIN events AS r ON r.team_id = a.team_id AND r.report_id = a.report_id
        WHERE a.deleted = 0
        GROUP BY a.team_id, a.report_id
    ),
    summaries AS (
        SELECT
            team_id,
            report_id,
            argMax(title, generated_at) AS summary_title,
            argMax(summary, generated_at) AS summary_text,
            argMax(actionability, generated_at) AS summary_actionability,
            argMax(priority, generated_at) AS summary_priority,
            argMax(actionability_reason, generated_at) AS summary_actionability_reason,
            argMax(priority_reason, generated_at) AS summary_priority_reason,
            argMax(safety, generated_at) AS summary_safety,
            argMax(safety_kind, generated_at) AS summary_safety_kind,
            argMax(safety_quote, generated_at) AS summary_safety_quote
        FROM {{ source('report_summaries') }}
        GROUP BY team_id, report_id
    ),
    research AS (
        SELECT
            team_id,
            report_id,
            status AS research_status,
            sandbox AS research_sandbox,
            repository AS research_repository,
            findings AS research_findings,
            log_key AS research_log_key,
            confidence AS research_confidence
        FROM {{ source('research_results') }}
        ORDER BY research_round DESC, finished_at DESC
        LIMIT 1 BY team_id, report_id
    )
SELECT
    team_id,
    report_id,
    latest_status AS status,
    if(summary_title != '', summary_title, event_title) AS title,
    if(summary_text != '', summary_text, event_summary) AS summary,
    live_signals AS signal_count,
    live_weight AS total_weight,
    latest_signals_at_run AS signals_at_run,
    max_research_round AS research_rounds,
    created_at,
    promoted_at,
    updated_at,
    if(latest_status = 'failed', latest_detail, '') AS error,
    -- a report the consolidation merged into another: suppressed, its latest event names the survivor
    if(latest_status = 'suppressed' AND startsWith(latest_detail, 'merged into '), substring(latest_detail, 13), '')
        AS merged_into,
    research_status,
    research_sandbox AS sandbox,
    research_repository AS repository,
    research_findings AS findings,
    research_log_key AS log_key,
    research_confidence,
    summary_actionability AS actionability,
    summary_priority AS priority,
    summary_actionability_reason AS actionability_reason,
    summary_priority_reason AS priority_reason,
    summary_safety AS safety,
    summary_safety_kind AS safety_kind,
    summary_safety_quote AS safety_quote,
    weight_after_batch
FROM events
-- With ClickHouse's default join_use_nulls = 0 a report without assignments, summary or research
-- reads zeros and empty strings from that side, which the counts and fallbacks above rely on.
LEFT JOIN assignments USING (team_id, report_id)
LEFT JOIN summaries USING (team_id, report_id)
LEFT JOIN research USING (team_id, report_id)
