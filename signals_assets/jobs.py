"""The two jobs the sensors launch: one run per signal batch, one run per report (research round)."""


import dagster as dg

from signals_assets.assets.embeddings import signal_embeddings
from signals_assets.assets.grouping import report_assignments
from signals_assets.assets.ingest import buffered_signals
from signals_assets.assets.reports import report_research, report_summaries

SQL_MODELS = dg.AssetSelection.groups("sql_models")
STAGE_TAG = "signals/stage"
# On runs that concern one team (report runs), so an instance can limit runs per team.
TEAM_TAG = "signals/team"
# Housekeeping runs: their own stage limit in the instance and a high priority, so they never wait
# behind a backlog of pipeline runs.
HOUSEKEEPING_TAGS = {STAGE_TAG: "housekeeping", "dagster/priority": "10"}

signal_batch_job = dg.define_asset_job(
    "signal_batch_job",
    selection=dg.AssetSelection.assets(buffered_signals, signal_embeddings, report_assignments) | SQL_MODELS,
    executor_def=dg.in_process_executor,
    tags={STAGE_TAG: "batch"},
    description="Buffer, embed and group one batch of signals, then refresh the SQL models.",
)

report_job = dg.define_asset_job(
    "report_job",
    selection=dg.AssetSelection.assets(report_summaries, report_research),
    executor_def=dg.in_process_executor,
    tags={STAGE_TAG: "report"},
    description="Summarise and research one promoted report (the SQL models are views: always current).",
)

regroup_job = dg.define_asset_job(
    "regroup_job",
    selection=dg.AssetSelection.assets(report_assignments) | SQL_MODELS,
    executor_def=dg.in_process_executor,
    tags={STAGE_TAG: "batch"},
    description="Re-group a range of batches in one run, in key order (config: team_ids); used by "
    "`signals regroup` after changing the provider, model or parameters.",
)
