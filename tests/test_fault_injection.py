"""Crash safety, short form: kill -9 at chosen stages, restart, settle, check.

Each test is one trial of tests/fault_harness.py on the shipped instance settings; the long form
(30+ kills spread over every stage and mode) is benchmarks/fault_injection.py, its results in
benchmarks/README.md. A trial passes when every kill landed at its stage and, after the restart,
every emitted signal is in exactly one report of its own team or rejected with a reason, no report
is left candidate/in_progress, no run is left unfinished, no grouping slot is held by an ended run,
batches were first grouped in key order, and `signals process` exits 0 on its last run."""

import json

from fault_harness import FaultTrial, local_instance_config, production_trial

from signals_assets.recovery.faults import STAGES


def assert_recovered(trial: FaultTrial, result) -> None:
    log = trial.log_path.read_text()[-4000:]
    assert [k.stage for k in result.kills if not k.reached] == [], (result.kills, log)
    assert result.defects() == {}, (json.dumps(result.as_dict(), indent=1, default=str)[:6000], log)
    assert result.in_one_report + result.rejected == result.emitted > 0, result


def test_signals_process_recovers_from_a_kill_at_every_stage(tmp_path):
    """`signals process` killed once at each stage in turn (a new wave of signals before each),
    then run once more: it resumes every half-done batch and report round and finishes them."""
    trial = FaultTrial(tmp_path, "process", local_instance_config(), signals_per_wave=10)
    result = trial.run(list(STAGES), kill_timeout=120, settle_timeout=240)
    assert_recovered(trial, result)
    assert result.process_exit_codes[-1] == 0


def test_daemon_recovers_from_kills_during_grouping_and_research(tmp_path):
    """The daemon's whole process group killed mid-grouping (the hook's second arrival: the first
    team of the batch decided, the second not; the grouping pool slot is held), then while a report
    is being researched."""
    trial = FaultTrial(tmp_path, "daemon", local_instance_config())  # 28 signals a wave: two batches
    result = trial.run(["group:2", "research"], kill_timeout=300, settle_timeout=600)
    assert_recovered(trial, result)
    assert result.report_statuses.get("ready", 0) > 0, result.report_statuses


def test_production_daemon_recovers_from_a_kill_during_grouping(tmp_path):
    """Postgres storage and the Docker run launcher: the daemon and the grouping run's container
    killed mid-grouping; run monitoring fails the run, its pool slot is freed, grouping resumes."""
    with production_trial(tmp_path, signals_per_wave=8) as trial:
        result = trial.run(["group"], kill_timeout=420, settle_timeout=600)
    assert_recovered(trial, result)
