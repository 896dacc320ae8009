-- What a product team sees: researched reports that are ready or wait for their input, most urgent
-- priority first (P0..P4, unprioritised last), then the heaviest.
-- materialized: view
SELECT
    team_id,
    report_id,
    status,
    priority,
    actionability,
    title,
    summary,
    signal_count,
    total_weight,
    repository,
    findings,
    log_key,
    created_at,
    promoted_at,
    updated_at
FROM {{ ref('reports') }}
WHERE status IN ('ready', 'pending_input')
ORDER BY priority = '', priority, total_weight DESC, report_id
