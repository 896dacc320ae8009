"""Manual backfills as the UI launches them: GraphQL `launchPartitionBackfill` (the call of the
Materialize dialog) against a real `dagster dev` (webserver and daemon) on a processed pipeline.
Each backfill must complete, and re-materialising must leave the tables as they were."""

import json
import os
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster_dev import BIN, graphql, running_dagster_dev

from signals_assets.reports.promotions import all_promotions
from signals_assets.settings import load_settings
from signals_assets.storage.clickhouse import open_chdb
from signals_assets.storage.sql_models import load_models

from conftest import CARD_DECLINED, PASSWORD_RESET, REPO_ROOT, emit_texts

BATCH_ASSETS = ["buffered_signals", "signal_embeddings", "report_assignments"]
TABLES = {
    "signals": "batch_key, signal_id",
    "rejected_signals": "batch_key, signal_id",
    "signal_embeddings": "batch_key, signal_id",
    "report_assignments": "batch_key, seq",
    "report_events": "report_id, stage, research_round, seq, event",
    "report_summaries": "report_id",
    "research_results": "report_id, research_round",
}
# What a re-run writes anew by nature: when it ran, which run, and the log named after that run.
REGENERATED = {"generated_at", "finished_at", "dagster_run_id", "log_key", "updated_at"}
REPORT_STAGES = {"summary", "research"}
UNFINISHED_RUNS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""
STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on Error { message }
  }
}
"""
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def backfill(base_url: str, dagster_home: Path, params: dict, timeout: float = 600) -> None:
    """Launch as the UI does, wait for the backfill to finish, and require every run of it to succeed."""
    launched = graphql(base_url, LAUNCH, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = graphql(base_url, STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if status.get("status") in BACKFILL_DONE:
            break
        time.sleep(2)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        failures = [
            event.message
            for run in runs
            for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        ]
    assert status and status["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), (params, status, failures)
    assert runs and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs), (params, failures)


def settle(dagster_home: Path, store, timeout: float = 600) -> None:
    """Until no run is queued or running and no promotion waits (a re-grouped batch promotes its
    reports again, and the promotion sensor researches them again)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            active = instance.get_runs_count(filters=dg.RunsFilter(statuses=UNFINISHED_RUNS))
        if not active and not all_promotions(store):
            return
        time.sleep(2)
    raise AssertionError("the pipeline did not settle")


def masked(row: dict) -> dict:
    """The row without what a re-run regenerates (for report events, their time)."""
    regenerated = REGENERATED | ({"at"} if row.get("stage") in REPORT_STAGES else set())
    return {column: ("<regenerated>" if column in regenerated else value) for column, value in row.items()}


def tables() -> dict:
    """Every base table and SQL model, rows in a stable order, regenerated columns masked."""
    settings = load_settings()
    models = [model.name for model in load_models()]
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        contents = {table: db.query(f"SELECT * FROM {table} ORDER BY {order}") for table, order in TABLES.items()}
        contents |= {model: db.query(f"SELECT * FROM {model}") for model in models}
    return {
        table: sorted((json.dumps(masked(row), sort_keys=True) for row in rows)) for table, rows in contents.items()
    }


@pytest.fixture
def processed(signals_home, object_store, team):
    """Two reports researched by `signals process` on the instance `dagster dev` will use."""
    dagster_home = signals_home / "dagster_home"
    (dagster_home / "dagster.yaml").write_text((REPO_ROOT / "deploy" / "dagster.local.yaml").read_text())
    emit_texts(object_store, CARD_DECLINED + PASSWORD_RESET)
    done = subprocess.run([str(BIN / "signals"), "process"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        batches = instance.get_dynamic_partitions("signal_batches")
        reports = instance.get_dynamic_partitions("reports")
    assert len(batches) == 1 and len(reports) == 2, (batches, reports)
    return dagster_home, batches[0], sorted(reports)


@pytest.fixture
def dagster_dev(processed, tmp_path):
    env = {**os.environ, "SIGNALS_SENSOR_INTERVAL_SECONDS": "2", "PYTHONUNBUFFERED": "1"}
    with running_dagster_dev(env, tmp_path / "dagster-dev.log") as base_url:
        yield base_url


def asset_keys(names: list[str]) -> list[dict]:
    return [{"path": [name]} for name in names]


def test_ui_backfills_of_every_stage_complete_and_leave_identical_tables(processed, dagster_dev, object_store):
    dagster_home, batch, (report, _) = processed
    base_url = dagster_dev
    before = tables()
    assert before["report_summaries"] and before["research_results"]

    backfill(base_url, dagster_home, {"assetSelection": asset_keys(BATCH_ASSETS), "partitionNames": [batch]})
    settle(dagster_home, object_store)
    assert tables() == before

    backfill(
        base_url,
        dagster_home,
        {"assetSelection": asset_keys(["report_summaries", "report_research"]), "partitionNames": [report]},
    )
    assert tables() == before

    backfill(base_url, dagster_home, {"assetSelection": asset_keys(["report_summaries"]), "partitionNames": [report]})
    assert tables() == before

    models = [model.name for model in load_models()]
    backfill(
        base_url,
        dagster_home,
        {"partitionsByAssets": [{"assetKey": {"path": [name]}, "partitions": None} for name in models]},
    )
    assert tables() == before
