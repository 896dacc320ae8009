-- Each signal's current assignment. Assignments are append-only: the offline provider's
-- consolidation may re-assign a signal of an earlier batch in a later batch, so the latest row by
-- (batch_key, seq) wins; `first_batch_key` and `first_assigned_at` say when the signal was first grouped.
-- materialized: view
SELECT
    team_id,
    signal_id,
    argMax(report_id, (batch_key, seq)) AS report_id,
    argMax(weight, (batch_key, seq)) AS weight,
    argMax(deleted, (batch_key, seq)) AS deleted,
    argMax(decision, (batch_key, seq)) AS decision,
    argMax(similarity, (batch_key, seq)) AS similarity,
    argMax(matched_signal_id, (batch_key, seq)) AS matched_signal_id,
    max(batch_key) AS last_batch_key,
    min(batch_key) AS first_batch_key,
    min(assigned_at) AS first_assigned_at
FROM {{ source('report_assignments') }}
GROUP BY team_id, signal_id
