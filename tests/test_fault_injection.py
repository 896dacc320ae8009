"""Crash safety, short form: kill -9 at chosen stages, restart, settle, check.

Each test is one trial of tests/fault_harness.py on the shipped instance settings; the long form
(30+ kills spread over every stage and mode) is benchmarks/fault_injection.py, its results in
benchmarks/README.md. A trial passes when every kill landed at its stage and, after the restart,
every emitted signal is in exactly one report of its own team or rejected with a reason, no report
is left candidate/in_progress, no run is left unfinished, no grouping slot is held by an ended run,
batches were first grouped in key order, no report round has two outcomes, the store and instance
open, and `signals process` exits 0 on its last run. Kills planned as `random` land at a random
delay rather than at a stage."""

import json
import os
import random
import subprocess
import sys
import time

from fault_harness import (
    RANDOM,
    FaultTrial,
    choose_arrival,
    grouping_order_defects,
    local_instance_config,
    production_trial,
)

from signals_assets.recovery.faults import MARKER_DIR_VARIABLE, PAUSE_VARIABLE, STAGES, arrivals, marker_path


def assert_recovered(trial: FaultTrial, result) -> None:
    log = trial.log_path.read_text()[-4000:]
    assert [k.stage for k in result.kills if not k.reached] == [], (result.kills, log)
    assert result.defects() == {}, (json.dumps(result.as_dict(), indent=1, default=str)[:6000], log)
    assert result.in_one_report + result.rejected == result.emitted > 0, result


def test_a_bare_stage_gets_an_arrival_drawn_from_those_seen_and_the_same_one_for_a_seed():
    seen = {"summarise": 3, "research": 1}
    draws = [choose_arrival("summarise", seen, random.Random(seed)) for seed in range(40)]
    assert set(draws) == {"summarise:1", "summarise:2", "summarise:3"}, draws
    assert draws == [choose_arrival("summarise", seen, random.Random(seed)) for seed in range(40)]
    # Never seen, or seen once: the first arrival, which lands whenever the stage comes at all.
    assert {choose_arrival(stage, seen, random.Random(7)) for stage in ("claim", "research")} == {
        "claim:1",
        "research:1",
    }
    assert choose_arrival("group:2", seen, random.Random(7)) == "group:2"  # a planned arrival is kept


def test_grouping_order_is_read_from_when_each_grouping_committed():
    # b1 grouped by a run killed before its step ended: its materialisation came from its next attempt,
    # after b2's; the groupings themselves committed in key order, which is what the guarantee says.
    in_order = {
        "b20261206T052341084313Z": "2026-12-06T05:23:52.120000+00:00",
        "b20261206T052327420751Z": "2026-12-06T05:23:31+00:00",  # isoformat leaves out zero microseconds
    }
    assert grouping_order_defects(in_order) == []
    grouped_later = {**in_order, "b20261206T052327420751Z": "2026-12-06T05:23:52.130000+00:00"}
    assert grouping_order_defects(grouped_later) == ["b20261206T052327420751Z grouped after b20261206T052341084313Z"]


def test_the_hook_counts_arrivals_at_every_stage_and_pauses_only_at_the_chosen_one(tmp_path):
    """A real process through the hook: two arrivals at claim and one at buffer are counted and passed,
    the second arrival at buffer pauses (marker with its pid) until the process is killed."""
    script = "from signals_assets.recovery.faults import pause_point\n" + "".join(
        f"pause_point({stage!r}); print({stage!r}, flush=True)\n" for stage in ("claim", "buffer", "claim", "buffer")
    )
    env = {**os.environ, PAUSE_VARIABLE: "buffer:2", MARKER_DIR_VARIABLE: str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert [process.stdout.readline().strip() for _ in range(3)] == ["claim", "buffer", "claim"]
        marker = marker_path(tmp_path, "buffer")
        deadline = time.monotonic() + 30
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.read_text() == str(process.pid)
        assert process.poll() is None  # still paused
    finally:
        process.kill()
        process.wait()
    assert (arrivals(tmp_path, "claim"), arrivals(tmp_path, "buffer"), arrivals(tmp_path, "research")) == (2, 2, 0)


def test_every_write_to_the_store_and_the_object_store_arrives_at_the_write_stage(tmp_path, monkeypatch):
    """`write:<n>` kills between any two writes only if every kind of write passes the hook: the store's
    statements and inserts (an insert of no rows writes nothing) and the object store's puts, moves and
    deletes; reads do not."""
    from signals_assets.resources.clickhouse import ClickHouseResource
    from signals_assets.storage.object_store import LocalObjectStore

    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv(PAUSE_VARIABLE, "write:1000000")
    monkeypatch.setenv(MARKER_DIR_VARIABLE, str(markers))
    objects = LocalObjectStore(tmp_path / "objects")
    objects.put("a", b"1")
    objects.put_if_absent("b", b"2")
    objects.move("b", "c")
    objects.delete("a")
    objects.get("c"), objects.list(""), objects.exists("c")
    assert arrivals(markers, "write") == 4
    with ClickHouseResource(path=str(tmp_path / "ch")).session() as db:
        before = arrivals(markers, "write")  # opening applied the schema: statements too
        db.insert("report_summaries", [{"team_id": 1, "report_id": "r1-a", "title": "t", "summary": "s"}])
        db.insert("report_summaries", [])
        db.command("DELETE FROM report_summaries WHERE report_id = 'r1-a'")
        db.query("SELECT count() FROM report_summaries")
        assert arrivals(markers, "write") - before == 2


def test_signals_process_recovers_from_a_kill_at_every_stage(tmp_path):
    """`signals process` killed once at each stage in turn (a new wave of signals before each),
    then run once more: it resumes every half-done batch and report round and finishes them."""
    trial = FaultTrial(tmp_path, "process", local_instance_config(), signals_per_wave=10)
    result = trial.run(list(STAGES), kill_timeout=120, settle_timeout=240)
    assert_recovered(trial, result)
    assert result.process_exit_codes[-1] == 0


def test_signals_process_killed_again_and_again_in_one_batch_never_parks_it(tmp_path):
    """Three kills of `signals process` while it embeds the same batch, with the shipped attempt limit
    (SIGNALS_MAX_ATTEMPTS 3): each kill cut the batch's attempt off with the process, none was the
    batch's own failure, so the next run groups it instead of parking its signals (it used to)."""
    trial = FaultTrial(tmp_path, "process", local_instance_config(), signals_per_wave=8)
    assert "SIGNALS_MAX_ATTEMPTS" not in trial.env
    result = trial.run(["embed:1"] * 3, kill_timeout=120, settle_timeout=300)
    assert_recovered(trial, result)
    assert result.process_exit_codes[-1] == 0
    assert trial.log_path.read_text().count("not counted as a failed attempt") >= 3


def test_a_kill_that_does_not_land_leaves_the_later_kills_and_a_missed_arrival_is_retried(tmp_path):
    """`signals process`: the 40th arrival at summarise never comes (the kill does not land, the next
    ones still run); then a drawn arrival at summarise beyond the wave's (seed 5 draws 40 of the 50
    preset as seen) is retried at the first arrival of a fresh wave and lands; then claim lands at an
    arrival drawn from the two a wave brought."""
    trial = FaultTrial(tmp_path, "process", local_instance_config(), seed=5)
    trial.arrivals_seen["summarise"] = 50
    result = trial.run(["summarise:40", "summarise", "claim"], kill_timeout=120, settle_timeout=600)
    log = trial.log_path.read_text()[-4000:]
    assert [(k.stage, k.arrival, k.missed, k.reached) for k in result.kills[:2]] == [
        ("summarise:40", "summarise:40", [], False),
        ("summarise", "summarise:1", ["summarise:40"], True),
    ], log
    # A wave of 28 signals makes two batches, so claim comes twice: either arrival may be drawn.
    assert (result.kills[2].stage, result.kills[2].missed, result.kills[2].reached) == ("claim", [], True), log
    assert trial.arrivals_seen["claim"] == 2
    assert result.defects() == {}, (json.dumps(result.as_dict(), indent=1, default=str)[:6000], log)
    assert result.in_one_report + result.rejected == result.emitted == 5 * 14 * 2


def test_daemon_recovers_from_kills_during_grouping_and_research(tmp_path):
    """The daemon's whole process group killed mid-grouping (the hook's second arrival: the first
    team of the batch decided, the second not; the grouping pool slot is held), then while a report
    is being researched."""
    import dagster as dg

    from signals_assets.recovery.local_run_launcher import launcher_pid
    from signals_assets.sensors.dead_runs import INTERRUPTED_TAG, run_worker_pid

    trial = FaultTrial(tmp_path, "daemon", local_instance_config())  # 28 signals a wave: two batches
    result = trial.run(["group:2", "research"], kill_timeout=300, settle_timeout=600)
    assert_recovered(trial, result)
    assert result.report_statuses.get("ready", 0) > 0, result.report_statuses
    # The shipped launcher named the daemon on every run it launched, so the runs the kills cut off
    # were told apart from failures: interrupted, not counted.
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        launched = [r for r in instance.get_runs() if run_worker_pid(instance, r)]
        assert launched and all(launcher_pid(r.run_id, r.tags) for r in launched), [r.tags for r in launched]
        assert any(r.tags.get(INTERRUPTED_TAG) == r.run_id for r in launched)


def test_production_daemon_recovers_from_a_kill_during_grouping(tmp_path, code_image):
    """Postgres storage and the Docker run launcher: the daemon and the grouping run's container
    killed mid-grouping; run monitoring fails the run, its pool slot is freed, grouping resumes."""
    with production_trial(tmp_path, code_image, signals_per_wave=8) as trial:
        result = trial.run(["group"], kill_timeout=420, settle_timeout=600)
    assert_recovered(trial, result)


def test_signals_process_recovers_from_kills_inside_a_range_of_batches(tmp_path):
    """Small batches, so one `signals process` run covers a range of several: killed while buffering
    the third batch of a range, then while grouping the second, and run once more, it finishes all."""
    import dagster as dg

    from signals_assets.jobs import RANGE_START_TAG

    small = {"SIGNALS_BATCH_MAX_SIGNALS": "3", "SIGNALS_MAX_SIGNALS_PER_TEAM_BATCH": "3"}
    trial = FaultTrial(tmp_path, "process", local_instance_config(), signals_per_wave=9, extra_env=small)
    # Every batch of a killed range run is retried alone, so the last run does more runs than usual.
    result = trial.run(["buffer:3", "promote:2"], kill_timeout=120, settle_timeout=900)
    assert_recovered(trial, result)
    assert result.process_exit_codes[-1] == 0
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="signal_batch_job"))
    assert any(RANGE_START_TAG in run.tags for run in runs)


def test_signals_process_recovers_from_kills_at_random_times_and_the_checks_see_a_second_outcome(tmp_path):
    """`signals process` killed three times at a delay drawn over the span a run of it is busy (wherever
    it happens to be: a store write, a claim, a chdb part write), and `signals emit-file` killed mid-way
    and run again, then `signals process` run once more: nothing lost, nothing twice, no round with
    two outcomes. Then the checks are shown to see what they look for: a
    copied research result and a signal both accepted and rejected are reported."""
    trial = FaultTrial(tmp_path, "process", local_instance_config(), signals_per_wave=8, seed=3, kill_emits=True)
    result = trial.run([RANDOM] * 3, kill_timeout=120, settle_timeout=300)
    assert_recovered(trial, result)
    assert result.emits_killed > 0  # of the 7 emit-file runs after the first, each killed at a random moment
    assert [k.stage for k in result.kills] == [RANDOM] * 3
    assert all(0 <= float(k.arrival.removesuffix("s")) <= 120 for k in result.kills), result.kills
    assert result.process_exit_codes[-1] == 0

    accepted = next(signal_id for signal_id in trial.emitted)
    sql = (
        "INSERT INTO research_results SELECT * FROM research_results LIMIT 1",
        "INSERT INTO rejected_signals (signal_id, team_id, reason) "
        f"SELECT signal_id, team_id, 'copied' FROM signals WHERE signal_id = '{accepted}'",
    )
    script = (
        "import sys\nfrom signals_assets.cli.read_models import store_session\n"
        "from signals_assets.settings import load_settings\n"
        "with store_session(load_settings()) as db:\n    for statement in sys.argv[1:]:\n        db.command(statement)\n"
    )
    subprocess.run([sys.executable, "-c", script, *sql], env=trial.env, check=True, timeout=300)
    tampered = trial.check(True, 0)
    assert tampered.duplicated == [accepted], tampered.duplicated
    assert len(tampered.double_outcomes) == 1 and "research results" in tampered.double_outcomes[0]
