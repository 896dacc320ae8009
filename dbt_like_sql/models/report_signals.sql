-- The live signals of each report: every current assignment that is not deleted, with its signal.
-- `weight` and `batch_key` are the current assignment's (the weight counted in the report's total_weight).
-- materialized: view
SELECT
    a.team_id AS team_id,
    a.report_id AS report_id,
    a.signal_id AS signal_id,
    s.source_product AS source_product,
    s.source_type AS source_type,
    s.source_id AS source_id,
    s.description AS description,
    a.weight AS weight,
    a.decision AS decision,
    a.similarity AS similarity,
    a.matched_signal_id AS matched_signal_id,
    a.last_batch_key AS batch_key,
    a.first_assigned_at AS assigned_at
FROM {{ ref('current_assignments') }} AS a
INNER JOIN {{ source('signals') }} AS s ON s.team_id = a.team_id AND s.signal_id = a.signal_id
WHERE a.deleted = 0
