"""The production instance for real: deploy/dagster.yaml (Postgres storage, queued runs, run
monitoring, DockerRunLauncher) with the daemon launching every pipeline run into a container of the
code-location image (scripts/build-code-image; scripts/test builds it, as for every test that requests
the `code_image` fixture, and starts the engine).

This machine's engine has no bridge network, so run containers use the host network (Postgres on
127.0.0.1) and see the test's folders (SIGNALS_HOME with the chdb store and the object store,
DAGSTER_HOME, the team's repository) at the same paths, as the host user. chdb's one-process lock is
a file lock in the mounted store, so it holds across the container boundary."""

import os
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest
import yaml

from signals_assets.ingestion.teams import TeamConfig, save_team
from signals_assets.recovery.local_run_launcher import LAUNCHER_HOST_TAG, LAUNCHER_TAG, launcher_pid
from signals_assets.research.docker_sandbox import engine_client
from signals_assets.resources.sandbox import SandboxResource
from signals_assets.sensors.dead_runs import INTERRUPTED_TAG, fail_dead_runs

from conftest import CARD_DECLINED, emit_texts, production_instance_config
from test_daemon_e2e import kill_group, signals_cli, start_daemon
from test_recovery import starting_run

TEST_LABEL = "signals/test"


@pytest.fixture
def container_label():
    """A label on every run container of the test; they are removed afterwards."""
    value = uuid.uuid4().hex
    yield value
    containers = engine_client().containers.list(all=True, filters={"label": f"{TEST_LABEL}={value}"})
    with ThreadPoolExecutor() as pool:  # removal takes tens of seconds each on the vfs storage driver
        list(pool.map(lambda container: container.remove(force=True), containers))


def host_network_config(tmp_path, label: str) -> dict:
    """deploy/dagster.yaml as shipped, but for this machine's engine (see the module docstring)."""
    config = production_instance_config()
    launcher = config["run_launcher"]["config"]
    launcher["network"] = "host"
    launcher["container_kwargs"] = {
        "auto_remove": False,  # keep exited containers to check them (the fixture removes them)
        "labels": {TEST_LABEL: label},
        "volumes": [f"{tmp_path}:{tmp_path}"],
        "user": f"{os.getuid()}:{os.getgid()}",  # files in the mounted folders stay the host user's
    }
    return config


def test_daemon_launches_pipeline_runs_into_containers(
    signals_home, object_store, demo_repository, postgres_database, container_label, code_image, tmp_path, monkeypatch
):
    save_team(object_store, TeamConfig(team_id=1, ai_processing_consent=True, repositories=[str(demo_repository)]))
    dagster_home = signals_home / "dagster_home"
    config = host_network_config(tmp_path, container_label)
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("SIGNALS_ASSETS_IMAGE", code_image)
    for name in config["run_launcher"]["config"]["env_vars"]:
        monkeypatch.setenv(name, os.environ.get(name, ""))  # the launcher requires every listed variable to be set
    env = {**os.environ, "SIGNALS_SENSOR_INTERVAL_SECONDS": "2", "PYTHONUNBUFFERED": "1"}

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_launcher).__name__ == "PatientDockerRunLauncher"
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        instance.get_runs(limit=1)  # create the schema before several processes race to do it

    emit_texts(object_store, CARD_DECLINED)
    log_path = tmp_path / "daemon.log"
    daemon = start_daemon(env, log_path)
    try:
        status = signals_cli(
            env, "status", "--team-id", "1", "--wait", "--expected-signals", "3", "--timeout", "600", timeout=660
        )
    finally:
        kill_group(daemon)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        # `settled` is the store's view (every report researched); a run's container goes on without the
        # daemon and may still be finishing its later steps (summaries, checks).
        deadline = time.monotonic() + 180
        while not all(r.dagster_run.is_finished for r in instance.get_run_records()) and time.monotonic() < deadline:
            time.sleep(2)
        client = engine_client()
        containers = client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={container_label}"})
        logs = "\n".join(c.logs(tail=30).decode(errors="replace") for c in containers)
        assert status["settled"], (status, log_path.read_text()[-3000:], logs)
        runs = {r.dagster_run.job_name: r.dagster_run for r in instance.get_run_records()}
        assert set(runs) == {"signal_batch_job", "report_job"}, runs
        for run in runs.values():
            assert run.status == dg.DagsterRunStatus.SUCCESS, (run.job_name, logs)
            assert launcher_pid(run.run_id, run.tags) and run.tags[LAUNCHER_HOST_TAG] == socket.gethostname()
            container = client.containers.get(run.tags["docker/container_id"])
            assert container.attrs["Config"]["Image"] == code_image and container.attrs["State"]["ExitCode"] == 0
            assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        assert runs["report_job"].tags["signals/team"] == "1"
        batch = runs["signal_batch_job"].tags["dagster/partition"]
        for asset, run in [
            ("buffered_signals", "signal_batch_job"),
            ("signal_embeddings", "signal_batch_job"),
            ("report_assignments", "signal_batch_job"),
            ("report_summaries", "report_job"),
            ("report_research", "report_job"),
        ]:
            records = instance.fetch_materializations(dg.AssetKey(asset), limit=10).records
            assert [r.run_id for r in records] == [runs[run].run_id], asset
        assert records[0].asset_materialization.partition == runs["report_job"].tags["dagster/partition"]
        latest = instance.get_latest_materialization_event(dg.AssetKey("buffered_signals"))
        assert latest.asset_materialization.partition == batch

    assert (status["accepted"], status["assigned"]) == (3, 3)
    listing = signals_cli(env, "list-reports", "--team-id", "1", "--signals")
    [report] = listing["reports"]
    assert report["status"] == "ready" and report["signal_count"] == 3
    assert report["research"]["findings"][0]["file"] == "checkout/card_payments.py"


def test_a_run_whose_launcher_died_before_its_container_started_is_failed_at_once(
    signals_home, postgres_database, container_label, tmp_path, monkeypatch
):
    """The daemon killed while it launches a run into a container leaves the run STARTING, with no container
    yet or one created but not started. Run monitoring would fail it only after start_timeout_seconds (600 s),
    every later batch waiting behind it; the reconciler fails it at its next look, as cut off by a restart
    (not a failed attempt), and removes the container nothing will start. A run whose container started,
    or whose launcher still runs, is left to run monitoring."""
    import docker

    config = host_network_config(tmp_path, container_label)
    (signals_home / "dagster_home" / "dagster.yaml").write_text(yaml.safe_dump(config))
    for name in config["run_launcher"]["config"]["env_vars"]:
        monkeypatch.setenv(name, os.environ.get(name, ""))
    image = SandboxResource().image  # any small local image: the containers only sleep
    monkeypatch.setenv("SIGNALS_ASSETS_IMAGE", image)
    client = engine_client()
    gone = subprocess.Popen(["true"])
    gone.wait()

    with dg.DagsterInstance.from_config(str(signals_home / "dagster_home")) as instance:

        def launched(launcher: int, container: str = "") -> tuple[dg.DagsterRun, str]:
            """A STARTING run tagged as the launcher tags it, with a container `created` or `started`."""
            run = starting_run(instance)
            instance.add_run_tags(
                run.run_id, {LAUNCHER_TAG: f"{launcher}/{run.run_id}", LAUNCHER_HOST_TAG: socket.gethostname()}
            )
            if not container:
                return run, ""
            labels = {"dagster/run_id": run.run_id, TEST_LABEL: container_label}
            created = client.containers.create(image, ["sleep", "300"], labels=labels, network_mode="none")
            if container == "started":
                created.start()
            instance.add_run_tags(run.run_id, {"docker/container_id": created.id})
            return run, created.id

        never_created, _ = launched(gone.pid)
        never_started, unstarted_container = launched(gone.pid, "created")
        started, _ = launched(gone.pid, "started")
        alive_launcher, its_container = launched(os.getpid(), "created")

        done = fail_dead_runs(instance)
        assert len(done) == 2, done
        assert f"marked run {never_created.run_id}" in done[0] + done[1]
        assert "no container was created for it, and its launcher" in done[0] + done[1]
        assert "was created but never started (removed)" in done[0] + done[1]
        assert "not counted as a failed attempt" in done[0] and "not counted as a failed attempt" in done[1]
        for run in (never_created, never_started):
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
            assert instance.get_run_by_id(run.run_id).tags[INTERRUPTED_TAG] == run.run_id
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(unstarted_container)
        for run in (started, alive_launcher):
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTING
        assert client.containers.get(its_container).status == "created"


def test_a_run_container_finds_the_code_locations_bytecode_and_the_safety_literals_in_the_image(code_image):
    """Every run is a new container whose /opt its user cannot write: the imports of the code location
    must come compiled and the safety rules' literals derived in the image (deploy/Dockerfile), or each
    run start pays both again (about 2 s)."""
    script = f"""
import importlib.util, os, dagster, signals_assets.definitions as definitions
from signals_assets.safety import filter, literals
compiled = [m.__name__ for m in (dagster, definitions, filter, literals)
            if os.path.exists(importlib.util.cache_from_source(m.__file__))]
def derived(pattern):
    raise AssertionError(f"literals derived at run time for {{pattern.pattern[:60]!r}}")
literals.derived_literals = derived
for text in {CARD_DECLINED!r}:
    filter.check_signal_text(text)
print(sorted(compiled))
"""
    output = engine_client().containers.run(
        code_image, ["python", "-W", "ignore", "-c", script], network_mode="none", remove=True, stderr=True
    )
    assert output.decode().strip().splitlines()[-1] == str(
        sorted(
            ["dagster", "signals_assets.definitions", "signals_assets.safety.filter", "signals_assets.safety.literals"]
        )
    )
