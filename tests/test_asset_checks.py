"""The asset checks on a real pipeline (chdb store, local object store, a temporary Dagster instance):
they pass in the runs of a healthy pipeline, and each fails once its guarantee is broken on purpose by
editing the store or the object store directly."""

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone

import dagster as dg
import pytest

from signals_assets.checks import guarantees
from signals_assets.checks.guarantees import BatchScope
from signals_assets.definitions import defs
from signals_assets.ingestion import inbox
from signals_assets.reports import promotions
from signals_assets.settings import load_settings
from signals_assets.storage.clickhouse import open_chdb
from signals_assets.storage.sql_models import build_model, load_models

from conftest import CARD_DECLINED, PASSWORD_RESET, group_one_batch


@dataclass
class Pipeline:
    instance: dg.DagsterInstance
    definitions: dg.Definitions
    batch: str
    reports: list[str]
    evaluations: list  # the check evaluations of the pipeline's own runs
    report_run_id: str


def store():
    settings = load_settings()
    return open_chdb(settings.clickhouse_path, settings.clickhouse_database)


@pytest.fixture
def pipeline(object_store, team):
    definitions = defs()
    with dg.instance_for_test() as instance:
        batch, result = group_one_batch(object_store, instance, definitions, CARD_DECLINED + PASSWORD_RESET)
        evaluations = list(result.get_asset_check_evaluations())
        reports = sorted(p["report_id"] for p in promotions.all_promotions(object_store))
        instance.add_dynamic_partitions("reports", reports)
        for report in reports:
            run = definitions.resolve_job_def("report_job").execute_in_process(partition_key=report, instance=instance)
            assert run.success
            evaluations += run.get_asset_check_evaluations()
        yield Pipeline(instance, definitions, batch, reports, evaluations, run.run_id)


def run_checks(pipeline: Pipeline, selection: dg.AssetSelection, tags: dict | None = None) -> dg.ExecuteInProcessResult:
    job = dg.define_asset_job("checks_under_test", selection=selection)
    definitions = dg.Definitions.merge(pipeline.definitions, dg.Definitions(jobs=[job]))
    return definitions.resolve_job_def(job.name).execute_in_process(
        instance=pipeline.instance, tags=tags or {}, raise_on_error=False
    )


def evaluate(pipeline: Pipeline, asset: str, check: str, tags: dict | None = None):
    """The check run on its own (as from the UI's Checks tab): its one evaluation."""
    key = dg.AssetCheckKey(dg.AssetKey(asset), check)
    [evaluation] = run_checks(pipeline, dg.AssetSelection.checks(key), tags).get_asset_check_evaluations()
    return evaluation


def test_every_check_runs_in_the_pipelines_runs_and_passes(pipeline):
    names = {(e.asset_key.to_user_string(), e.check_name) for e in pipeline.evaluations}
    assert names == {
        ("buffered_signals", "no_claims_left_behind"),
        ("buffered_signals", "no_parked_batches"),
        ("signal_embeddings", "one_embedding_per_accepted_signal"),
        ("report_assignments", "one_current_assignment_per_signal"),
        ("reports", "report_counts_match_assignments"),
        ("report_summaries", "no_parked_report_rounds"),
        ("report_research", "no_report_stranded_in_progress"),
    }
    failed = [(e.check_name, e.description) for e in pipeline.evaluations if not e.passed]
    assert failed == []
    assert {e.metadata["problem_count"].value for e in pipeline.evaluations} == {0}
    embeddings = next(e for e in pipeline.evaluations if e.check_name == "one_embedding_per_accepted_signal")
    assert embeddings.metadata["accepted_signals"].value == 6
    assert embeddings.metadata["dimension"].value == 384


def first_signal(db, batch: str) -> dict:
    return db.query("SELECT * FROM signal_embeddings WHERE batch_key = {b} ORDER BY signal_id LIMIT 1", {"b": batch})[0]


def drop_embedding(db, batch):
    db.command("DELETE FROM signal_embeddings WHERE signal_id = {id}", {"id": first_signal(db, batch)["signal_id"]})


def duplicate_embedding(db, batch):
    db.insert("signal_embeddings", [first_signal(db, batch)])


def shorten_embedding(db, batch):
    row = first_signal(db, batch)
    db.command("DELETE FROM signal_embeddings WHERE signal_id = {id}", {"id": row["signal_id"]})
    db.insert("signal_embeddings", [{**row, "embedding": row["embedding"][:3], "dimension": 3}])


@pytest.mark.parametrize("breakage", [drop_embedding, duplicate_embedding, shorten_embedding])
def test_a_signal_without_exactly_one_embedding_of_the_models_dimension_fails_and_blocks_grouping(pipeline, breakage):
    with store() as db:
        breakage(db, pipeline.batch)
        signal_id = first_signal(db, pipeline.batch)["signal_id"] if breakage is not drop_embedding else None

    evaluation = evaluate(
        pipeline, "signal_embeddings", "one_embedding_per_accepted_signal", {"dagster/partition": pipeline.batch}
    )
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert (
        "1 accepted signal(s) without exactly one all-MiniLM-L6-v2 embedding of 384 dimensions"
        in evaluation.description
    )
    if signal_id:
        assert evaluation.metadata["problems"].value[0]["signal_id"] == signal_id

    # blocking: in a run that also groups, report_assignments waits for the check and does not run
    key = dg.AssetCheckKey(dg.AssetKey("signal_embeddings"), "one_embedding_per_accepted_signal")
    result = run_checks(
        pipeline,
        dg.AssetSelection.checks(key) | dg.AssetSelection.assets("report_assignments"),
        {"dagster/partition": pipeline.batch},
    )
    assert not result.success
    assert result.get_asset_materialization_events() == []


def move_to_other_team(db, signal: dict):
    db.insert("report_assignments", [{**signal, "team_id": 2, "seq": 99}])


def assign_to_other_teams_report(db, signal: dict):
    db.insert("report_assignments", [{**signal, "report_id": "r2-0123456789abcdef", "seq": 99}])


def duplicate_current_assignment(db, signal: dict):
    db.insert("report_assignments", [{**signal, "report_id": "r1-0123456789abcdef"}])


def forget_assignment(db, signal: dict):
    db.command("DELETE FROM report_assignments WHERE signal_id = {id}", {"id": signal["signal_id"]})


@pytest.mark.parametrize(
    "breakage, problem",
    [
        (move_to_other_team, "assigned under teams [1, 2]"),
        (assign_to_other_teams_report, "report r2-0123456789abcdef has events of teams []"),
        (duplicate_current_assignment, "2 current assignments"),
        (forget_assignment, "not assigned"),
    ],
)
def test_a_signal_without_exactly_one_current_assignment_in_its_teams_report_fails(pipeline, breakage, problem):
    with store() as db:
        signal = db.query("SELECT * FROM report_assignments ORDER BY seq LIMIT 1")[0]
        breakage(db, signal)

    evaluation = evaluate(pipeline, "report_assignments", "one_current_assignment_per_signal")
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    [found] = evaluation.metadata["problems"].value
    assert found["signal_id"] == signal["signal_id"] and found["problem"].startswith(problem), found


def test_a_claim_left_behind_by_a_buffered_batch_fails(pipeline, object_store):
    object_store.put(f"{inbox.CLAIMED}{pipeline.batch}/left-behind.json", b"{}")

    evaluation = evaluate(pipeline, "buffered_signals", "no_claims_left_behind")

    assert not evaluation.passed
    assert evaluation.metadata["problems"].value[0]["batch_key"] == pipeline.batch
    assert f"buffered batch(es) with objects left under claimed/: {pipeline.batch}" in evaluation.description


def test_a_report_in_progress_whose_run_ended_fails(pipeline):
    report = pipeline.reports[0]
    now = datetime.now(timezone.utc)
    with store() as db:
        round_ = db.scalar("SELECT max(research_round) FROM report_events WHERE report_id = {r}", {"r": report})
        event = db.query("SELECT * FROM report_events WHERE report_id = {r} ORDER BY at DESC LIMIT 1", {"r": report})[0]
        db.insert(
            "report_events", [{**event, "event": "research_started", "status": "in_progress", "at": now, "seq": 5}]
        )
        result = db.query("SELECT * FROM research_results WHERE report_id = {r}", {"r": report})[0]
        # the run this row names has ended (successfully), so nothing will ever move the report on
        db.insert(
            "research_results",
            [{**result, "research_round": round_, "status": "in_progress", "dagster_run_id": pipeline.report_run_id}],
        )
        db.command("DELETE FROM research_results WHERE report_id = {r} AND status != 'in_progress'", {"r": report})

    evaluation = evaluate(pipeline, "report_research", "no_report_stranded_in_progress")

    assert not evaluation.passed
    [found] = evaluation.metadata["problems"].value
    assert found == {"report_id": report, "research_round": round_, "run_id": pipeline.report_run_id}


def test_report_counts_that_drift_from_the_assignments_fail(pipeline):
    with store() as db:
        # `reports` materialised as a table at this moment (as `-- materialized: table` would), then a
        # signal moves to another report without the table being rebuilt
        db.command("CREATE TABLE reports_frozen ENGINE = MergeTree ORDER BY tuple() AS SELECT * FROM reports")
        db.command("DROP VIEW reports")
        db.command("RENAME TABLE reports_frozen TO reports")
        signal = db.query("SELECT * FROM report_assignments WHERE report_id = {r} LIMIT 1", {"r": pipeline.reports[0]})[
            0
        ]
        db.insert("report_assignments", [{**signal, "report_id": pipeline.reports[1], "seq": 99}])

    evaluation = evaluate(pipeline, "reports", "report_counts_match_assignments")

    assert not evaluation.passed
    problems = {p["report_id"]: p for p in evaluation.metadata["problems"].value}
    assert set(problems) == set(pipeline.reports)
    assert problems[pipeline.reports[0]]["model_count"] == problems[pipeline.reports[0]]["assigned_count"] + 1
    assert problems[pipeline.reports[1]]["model_count"] == problems[pipeline.reports[1]]["assigned_count"] - 1


def test_report_counts_of_a_wrong_reports_view_fail(pipeline):
    # `reports` built from SQL that counts one signal too many in every report
    [wrong] = [
        dataclasses.replace(model, sql=model.sql.replace("count() AS live_signals", "count() + 1 AS live_signals"))
        for model in load_models()
        if model.name == "reports"
    ]
    wrong = dataclasses.replace(wrong, code_version="wrong")
    models = [wrong if model.name == "reports" else model for model in load_models()]
    with store() as db:
        build_model(db, wrong)
        # given the SQL the view was built from, the check evaluates it over the run's reports' rows
        narrowed = guarantees.report_counts_match(db, BatchScope(pipeline.batch, pipeline.batch), models)

    # the asset check, given the current SQL, finds a view of other SQL and reads it as it is
    evaluation = evaluate(pipeline, "reports", "report_counts_match_assignments", {"dagster/partition": pipeline.batch})

    for problems in (narrowed.problems, evaluation.metadata["problems"].value):
        assert {p["report_id"] for p in problems} == set(pipeline.reports)
        assert all(p["model_count"] == p["assigned_count"] + 1 for p in problems)
    assert not narrowed.passed and not evaluation.passed


def test_a_parked_batch_and_a_parked_report_round_show_as_failed_warnings(pipeline, object_store):
    for asset, check in (("buffered_signals", "no_parked_batches"), ("report_summaries", "no_parked_report_rounds")):
        assert evaluate(pipeline, asset, check).passed
    inbox.park_batch(object_store, pipeline.batch, "3 attempt(s) failed (limit 3); last: boom", 3)
    promotion = {
        "report_id": pipeline.reports[0],
        "team_id": 1,
        "round": 2,
        "batch_key": pipeline.batch,
        "promoted_at": 0,
    }
    promotions.park_promotion(object_store, promotion, "3 attempt(s) failed (limit 3); last: sandbox", 3)

    batch_check = evaluate(pipeline, "buffered_signals", "no_parked_batches")
    round_check = evaluate(pipeline, "report_summaries", "no_parked_report_rounds")

    for evaluation in (batch_check, round_check):
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert batch_check.description == (
        f"1 parked batch(es), waiting for `signals unpark`: {pipeline.batch}: 3 attempt(s) failed (limit 3); last: boom"
    )
    assert round_check.metadata["problems"].value == [
        {
            "round": f"{pipeline.reports[0]}-round2",
            "reason": "3 attempt(s) failed (limit 3); last: sandbox",
            "attempts": 3,
        }
    ]
