"""Re-grouping as a backfill: consistent reports, no orphans, no double-counted signals."""

import json
import os
import signal
import subprocess
import sys
import time

import dagster as dg
import numpy as np
import pytest
from dagster._core.test_utils import create_run_for_test

from signals_assets.assets.grouping import GROUPING_POOL
from signals_assets.cli.main import main
from signals_assets.definitions import defs
from signals_assets.grouping import consolidation, offline_matching
from signals_assets.grouping.engine import MatchDecision
from signals_assets.ingestion import inbox
from signals_assets.jobs import RANGE_END_TAG, RANGE_START_TAG
from signals_assets.partitions import signal_batches
from signals_assets.sensors.dead_runs import HOST_TAG, PID_TAG
from signals_assets.settings import load_settings
from signals_assets.storage.clickhouse import open_chdb
from signals_assets.storage.facts import current_assignments

from conftest import CARD_DECLINED, PASSWORD_RESET, emit_texts


def run(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def store_state() -> dict:
    settings = load_settings()
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        return {
            "assignments": db.query(
                "SELECT signal_id, report_id, batch_key FROM report_assignments ORDER BY signal_id"
            ),
            "reports": db.query("SELECT report_id, status, signal_count FROM reports ORDER BY report_id"),
            "orphan_results": db.scalar(
                "SELECT count() FROM research_results WHERE report_id NOT IN (SELECT report_id FROM report_assignments)"
            ),
            "batches": [r["batch_key"] for r in db.query("SELECT DISTINCT batch_key FROM signals ORDER BY batch_key")],
        }


def assert_vector_sums_match_members(reports: int) -> None:
    """Each report's size and vector sum from its vector deltas equal a recomputation from its current
    members, for `reports` reports."""
    settings = load_settings()
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        kept = db.query(
            "SELECT report_id, model, sum(signal_count) AS n, sumForEach(vector_sum) AS v FROM report_vector_deltas "
            "GROUP BY report_id, model HAVING n != 0 ORDER BY report_id, model"
        )
        recomputed = db.query(
            f"SELECT a.report_id AS report_id, e.model AS model, count() AS n, sumForEach(e.embedding) AS v "
            f"FROM ({current_assignments()}) AS a INNER JOIN signal_embeddings AS e ON e.signal_id = a.signal_id "
            "WHERE a.deleted = 0 GROUP BY a.report_id, e.model ORDER BY report_id, model"
        )
    assert [(r["report_id"], r["model"], r["n"]) for r in kept] == [
        (r["report_id"], r["model"], r["n"]) for r in recomputed
    ]
    assert len(kept) == reports
    for mine, truth in zip(kept, recomputed):
        np.testing.assert_allclose(mine["v"], truth["v"], atol=1e-9)


@pytest.fixture
def two_batches(capsys, object_store, team):
    emit_texts(object_store, CARD_DECLINED[:2] + PASSWORD_RESET)
    run(capsys, "process")
    emit_texts(object_store, CARD_DECLINED[2:], start=10)
    run(capsys, "process")
    return store_state()


def test_regrouping_with_the_same_engine_changes_nothing(capsys, two_batches):
    assert len(two_batches["batches"]) == 2
    result = run(capsys, "regroup", "--team-id", "1")
    assert result["batches"] == 2
    after = store_state()
    assert after["assignments"] == two_batches["assignments"]
    assert [r["report_id"] for r in after["reports"]] == [r["report_id"] for r in two_batches["reports"]]
    assert_vector_sums_match_members(len(after["reports"]))


def test_a_regroup_run_names_its_worker_so_a_killed_one_is_failed(capsys, two_batches):
    """A regroup run holds the grouping pool's slot: killed with its process, it must be found dead."""
    run(capsys, "regroup", "--team-id", "1")
    with dg.DagsterInstance.get() as instance:
        [tags] = [r.tags for r in instance.get_runs(dg.RunsFilter(job_name="regroup_job"))]
    assert tags[PID_TAG] == str(os.getpid()) and tags[HOST_TAG] and tags["dagster/max_retries"] == "0"


@pytest.mark.timeout(300)  # before the fix, the second regroup waited at the grouping pool for good
def test_a_regroup_after_a_killed_regroup_fails_its_run_and_frees_the_grouping_slot(capsys, two_batches):
    """`signals regroup` SIGKILLed while grouping leaves its run STARTED and the grouping pool's one slot
    claimed; with no daemon, the next `signals regroup` (the operator's re-run) fails that run first
    instead of waiting behind it forever, and re-groups."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    with dg.DagsterInstance.get() as instance:
        killed = create_run_for_test(
            instance,
            job_name="regroup_job",
            status=dg.DagsterRunStatus.STARTED,
            tags={PID_TAG: str(gone.pid), HOST_TAG: os.uname().nodename, "signals/stage": "batch"},
        )
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(GROUPING_POOL)
        assert storage.claim_concurrency_slot(GROUPING_POOL, killed.run_id, "report_assignments").is_claimed

    assert main(["regroup", "--team-id", "1"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["batches"] == 2
    assert f"marked run {killed.run_id}" in err and f"freed the pool slots of run {killed.run_id}" in err
    assert store_state()["assignments"] == two_batches["assignments"]
    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.event_log_storage.get_concurrency_info(GROUPING_POOL).claimed_slots == []


def test_a_regroup_interrupted_by_ctrl_c_says_so_and_runs_again(capsys, two_batches, tmp_path):
    """Ctrl-C of `signals regroup` in its run escaped as Dagster's own BaseException: a Python traceback and
    exit 1, where every error of the CLI is one line. It is `interrupted`, exit 130; the next regroup runs."""
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "SIGNALS_FAULT_PAUSE_AT": "group", "SIGNALS_FAULT_MARKER_DIR": str(markers)}
    child = subprocess.Popen(
        [sys.executable, "-m", "signals_assets.cli", "regroup", "--team-id", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not (markers / "group.paused").exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (markers / "group.paused").exists(), child.communicate()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert (child.returncode, out) == (130, b""), err
    assert err.endswith(b"\ninterrupted\n") and b"Traceback (most recent call last)" not in err

    assert run(capsys, "regroup", "--team-id", "1")["batches"] == 2
    assert store_state() == two_batches


def test_regroup_refuses_while_a_batch_a_kill_left_is_not_grouped(capsys, object_store, team):
    """`signals process` killed after embedding a batch of two teams (not grouped): regroup
    used to replay it for its team alone and fail every time on its blocking check (the other team's
    signals of a batch it grouped are unassigned: "internal error", exit 70); it refuses, naming the
    batch, and regroups once the batch is finished."""
    from signals_assets.ingestion.teams import TeamConfig, save_team

    save_team(object_store, TeamConfig(team_id=2, ai_processing_consent=True))
    emit_texts(object_store, CARD_DECLINED[:2])
    run(capsys, "process")
    emit_texts(object_store, PASSWORD_RESET, start=10)
    emit_texts(object_store, CARD_DECLINED[2:], team_id=2, start=20)  # batches are shared by the teams
    [batch] = inbox.claim_all(object_store, load_settings().batch_max_signals)
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("signal_batches", [batch])
        job = defs().resolve_job_def("signal_batch_job")
        embedded = [dg.AssetKey("buffered_signals"), dg.AssetKey("signal_embeddings")]
        assert job.execute_in_process(partition_key=batch, instance=instance, asset_selection=embedded).success

    assert main(["regroup", "--team-id", "1"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"not grouped yet ({batch})" in err and "signals process" in err

    run(capsys, "process")
    assert run(capsys, "regroup", "--team-id", "1")["batches"] == 2
    assert len({r["signal_id"] for r in store_state()["assignments"]}) == 6


def test_regroup_refuses_a_team_not_configured_or_without_consent_and_says_when_there_is_nothing(
    capsys, object_store, team
):
    """A regroup of a team with no configuration exited 0 (`{"batches": 0}`) where `teams show` names what
    is missing; one whose consent was withdrawn would send its signals to the provider again. A configured
    team with no signals has nothing to regroup, and says so."""
    from signals_assets.ingestion.teams import TeamConfig, save_team

    assert main(["regroup", "--team-id", "42"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: regroup: team 42 is not configured (run: signals teams set 42 --consent)\n")

    emit_texts(object_store, CARD_DECLINED[:2])
    run(capsys, "process")
    save_team(object_store, TeamConfig(team_id=1, ai_processing_consent=False))
    assert main(["regroup", "--team-id", "1"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: regroup: team 1 has not consented to AI processing\n")

    save_team(object_store, TeamConfig(team_id=3, ai_processing_consent=True))
    assert main(["regroup", "--team-id", "3"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["batches"] == 0 and err == "regroup: team 3 has no accepted signals: nothing to regroup\n"


@pytest.fixture
def split_everything(monkeypatch):
    """Another engine: every signal its own report, in the one-pass decision and the consolidation."""
    monkeypatch.setattr(
        offline_matching, "decide", lambda vector, reports, params, scale: MatchDecision(None, reason="split")
    )
    monkeypatch.setattr(consolidation, "cluster_pool", lambda vectors, params: list(range(len(vectors))))


def test_regrouping_with_another_engine_rebuilds_every_report(capsys, two_batches, split_everything):
    run(capsys, "regroup", "--team-id", "1")
    after = store_state()
    assert len(after["assignments"]) == 6 == len({a["signal_id"] for a in after["assignments"]})
    assert len(after["reports"]) == 6 and all(r["signal_count"] == 1 for r in after["reports"])
    assert all(r["status"] == "potential" for r in after["reports"])  # weight 0.5 each: nothing to research
    assert after["orphan_results"] == 0
    assert_vector_sums_match_members(6)


def test_regroup_replays_every_batch_in_order_when_the_older_ones_were_retired(capsys, two_batches, split_everything):
    """Retired batches are added back at the end of the partition set, after the ones still in it: a
    single range from the first batch to the last would resolve to nothing."""
    first, second = two_batches["batches"]
    with dg.DagsterInstance.get() as instance:
        instance.delete_dynamic_partition(signal_batches.name, first)  # what partition retirement does
    assert run(capsys, "regroup", "--team-id", "1")["batches"] == 2
    after = store_state()
    assert len(after["reports"]) == 6 and after["batches"] == [first, second]  # both batches re-grouped
    assert_vector_sums_match_members(6)
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions(signal_batches.name) == [second, first]
        ranges = [
            (r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG])
            for r in instance.get_runs(dg.RunsFilter(job_name="regroup_job"), ascending=True)
        ]
    assert ranges == [(first, first), (second, second)]


def test_a_changed_early_batch_cannot_silently_diverge_from_later_ones(two_batches, split_everything):
    with dg.DagsterInstance.get() as instance:
        result = (
            defs()
            .resolve_job_def("signal_batch_job")
            .execute_in_process(partition_key=two_batches["batches"][0], instance=instance, raise_on_error=False)
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "later batches" in str(failure.event_specific_data.error) and "signals regroup" in str(
        failure.event_specific_data.error
    )
    assert store_state()["assignments"] == two_batches["assignments"]
