"""The reports stage's reads and writes in the store: a report's live signals, its lifecycle state as
the summary and research steps see it, and its `report_summaries` row and summary event."""

from datetime import datetime, timezone

from signals_assets.reports.judgement import LifecycleDecision, ReportJudgement, ReportSignal, parse_extra
from signals_assets.storage.clickhouse import StoreSession

_REPORT_SIGNALS = f"""
SELECT a.signal_id AS signal_id, s.description AS description, s.source_product AS source_product,
       s.source_type AS source_type, s.source_id AS source_id, e.embedding AS embedding, a.weight AS weight,
       s.extra AS extra, a.first_batch_key AS batch_key
FROM ({CURRENT_ASSIGNMENTS}) AS a
INNER JOIN signals AS s ON s.signal_id = a.signal_id AND s.team_id = a.team_id
INNER JOIN signal_embeddings AS e ON e.signal_id = a.signal_id AND e.team_id = a.team_id AND e.model = {{model}}
WHERE a.report_id = {{report}} AND a.deleted = 0
ORDER BY a.first_position
"""
