"""The jobs the sensors launch: batch runs over one batch or a partition range of consecutive batches
(the attempt each run makes for each of its batches is in its per-batch tags), and report runs that each summarise and
research a partition range of reports (the rounds the run covers are in its `assets.reports.ROUNDS_TAG`)."""

from collections.abc import Mapping

import dagster as dg

from signals_assets.assets.grouping import report_assignments
from signals_assets.assets.ingestion import buffered_signals, signal_embeddings
from signals_assets.assets.reports import report_research, report_summaries

SQL_MODELS = dg.AssetSelection.groups("sql_models")
STAGE_TAG = "signals/stage"
# On runs that concern one team (report runs), so an instance can limit runs per team.
TEAM_TAG = "signals/team"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# On batch runs over a range of batches, one per batch: the attempt key the run makes for it.
BATCH_ATTEMPT_TAG_PREFIX = "signals/batch/"
# Housekeeping runs: their own stage limit in the instance and a high priority, so they never wait
# behind a backlog of pipeline runs.
HOUSEKEEPING_TAGS = {STAGE_TAG: "housekeeping", "dagster/priority": "10"}

signal_batch_job = dg.define_asset_job(
    "signal_batch_job",
    selection=dg.AssetSelection.assets(buffered_signals, signal_embeddings, report_assignments) | SQL_MODELS,
    executor_def=dg.in_process_executor,
    tags={STAGE_TAG: "batch"},
    description="Buffer, embed and group a batch or a range of consecutive batches (in key order), then refresh "
    "the SQL models.",
)

report_job = dg.define_asset_job(
    "report_job",
    selection=dg.AssetSelection.assets(report_summaries, report_research),
    executor_def=dg.in_process_executor,
    tags={STAGE_TAG: "report"},
    description="Summarise and research the promoted reports of a partition range, one materialisation per "
    "report (the SQL models are views: always current).",
)

regroup_job = dg.define_asset_job(
    "regroup_job",
    selection=dg.AssetSelection.assets(report_assignments) | SQL_MODELS,
    executor_def=dg.in_process_executor,
    tags={STAGE_TAG: "batch"},
    description="Re-group a range of batches in one run, in key order (config: team_ids); used by "
    "`signals regroup` after changing the provider, model or parameters.",
)


def batch_attempt_tag(batch: str) -> str:
    return f"{BATCH_ATTEMPT_TAG_PREFIX}{batch}"


def attempted_batches(partition_key: str | None, tags: Mapping[str, str]) -> list[str]:
    """The batches a batch run (or its request) attempts, in key order: its partition, or the batches its
    per-batch tags name (a range)."""
    if partition_key:
        return [partition_key]
    return sorted(tag[len(BATCH_ATTEMPT_TAG_PREFIX) :] for tag in tags if tag.startswith(BATCH_ATTEMPT_TAG_PREFIX))
