-- Each signal's current assignment. Assignments are append-only: the offline provider's
-- consolidation may re-assign a signal of an earlier batch in a later batch, so the latest row by
-- (batch_key, seq) wins; `first_batch_key` and `first_assigned_at` say when the signal was first grouped.
-- The rule is the fact `current_assignments` of signals_assets/storage/facts.py, shared with the Python queries.
-- materialized: view
SELECT * FROM {{ fact('current_assignments') }}
