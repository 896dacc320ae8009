-- Per team: accepted, rejected and assigned signals, and its reports by status.
-- materialized: view
WITH
    teams AS (
        SELECT team_id FROM {{ source('signals') }}
        UNION DISTINCT SELECT team_id FROM {{ source('rejected_signals') }}
        UNION DISTINCT SELECT team_id FROM {{ ref('reports') }}
    ),
    accepted AS (
        SELECT team_id, count() AS accepted_signals FROM {{ source('signals') }} GROUP BY team_id
    ),
    rejected AS (
        SELECT team_id, count() AS rejected_signals FROM {{ source('rejected_signals') }} GROUP BY team_id
    ),
    assigned AS (
        SELECT team_id, uniqExact(signal_id) AS assigned_signals
        FROM {{ ref('current_assignments') }}
        WHERE deleted = 0
        GROUP BY team_id
    ),
    by_status AS (
        SELECT
            team_id,
            count() AS reports,
            countIf(status = 'potential') AS potential,
            countIf(status = 'candidate') AS candidate,
            countIf(status = 'in_progress') AS in_progress,
            countIf(status = 'pending_input') AS pending_input,
            countIf(status = 'ready') AS ready,
            countIf(status = 'failed') AS failed
        FROM {{ ref('reports') }}
        GROUP BY team_id
    )
SELECT
    team_id,
    accepted_signals,
    rejected_signals,
    assigned_signals,
    reports,
    potential,
    candidate,
    in_progress,
    pending_input,
    ready,
    failed
FROM teams
-- A team with only rejected signals still has a row: its other counts read 0 through ClickHouse's
-- default join_use_nulls = 0.
LEFT JOIN accepted USING (team_id)
LEFT JOIN rejected USING (team_id)
LEFT JOIN assigned USING (team_id)
LEFT JOIN by_status USING (team_id)
ORDER BY team_id
