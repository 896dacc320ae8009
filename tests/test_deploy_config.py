"""deploy/dagster.yaml loads as a Postgres-backed instance with the queueing and monitoring it documents."""

import re
import shutil
import subprocess

import dagster as dg
import pytest
import yaml
from dagster_docker import DockerRunLauncher
from dagster_docker.container_context import DockerContainerContext

from conftest import REPO_ROOT


def test_production_instance_settings(postgres_database, tmp_path, monkeypatch):
    monkeypatch.setenv("SIGNALS_ASSETS_IMAGE", "signals-assets:test")
    (tmp_path / "dagster.yaml").write_text((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert instance.run_coordinator.dequeue_use_threads  # container starts in parallel
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 8
        limits = {(limit["key"], str(limit.get("value"))): limit["limit"] for limit in queue.tag_concurrency_limits}
        assert limits == {
            ("signals/stage", "batch"): 1,
            ("signals/stage", "report"): 6,
            ("signals/stage", "housekeeping"): 1,
            ("signals/team", "{'applyLimitPerUniqueValue': True}"): 2,
        }
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert instance.run_monitoring_enabled and instance.run_monitoring_max_runtime_seconds == 3600
        assert instance.run_monitoring_start_timeout_seconds >= 600  # a loaded host starts containers slowly
        launcher = instance.run_launcher
        assert isinstance(launcher, DockerRunLauncher)
        assert (launcher.image, launcher.networks) == ("signals-assets:test", ["signals_net"])
        assert {"DAGSTER_PG_PASSWORD", "SIGNALS_CLICKHOUSE_PASSWORD", "OPENAI_API_KEY"} <= set(launcher.env_vars)


def test_the_production_run_launcher_waits_for_a_slow_docker_engine(postgres_database, tmp_path, monkeypatch):
    """Finding 7: docker-py gives up on an API call after 60 s, and an engine busy removing a vfs
    container took longer, failing a run for nothing but slowness."""
    monkeypatch.setenv("SIGNALS_ASSETS_IMAGE", "signals-assets:test")
    (tmp_path / "dagster.yaml").write_text((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        client = instance.run_launcher._get_client(DockerContainerContext())  # what every launcher call uses
        assert client.api.timeout == 300
        assert client.ping()  # a real engine behind it


def test_local_instance_settings_look_at_the_queue_every_second_within_the_limits(tmp_path):
    """The 1 s threaded queue look (`run_queue`) loads together with the `concurrency` limits, which keep applying."""
    (tmp_path / "dagster.yaml").write_text((REPO_ROOT / "deploy" / "dagster.local.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert instance.run_coordinator.dequeue_use_threads
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 3
        limits = {(limit["key"], limit["value"]): limit["limit"] for limit in queue.tag_concurrency_limits}
        assert limits == {("signals/stage", stage): 1 for stage in ("batch", "report", "housekeeping")}
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1


def test_the_stack_passes_every_setting_to_the_services_and_the_run_containers():
    """compose's --env-file only fills `${…}` in compose.yaml, and the launcher copies only the variables
    dagster.yaml lists: a setting missing from either would be silently ignored in production."""
    settings = set(
        re.findall(r'"((?:SIGNALS|OPENAI)_[A-Z0-9_]+)"', (REPO_ROOT / "signals_assets" / "settings.py").read_text())
    )
    assert {"SIGNALS_HOME", "SIGNALS_MAX_EXTRA_KEYS", "OPENAI_BASE_URL"} <= settings  # the names are found
    services = set(yaml.safe_load((REPO_ROOT / "deploy" / "compose.yaml").read_text())["x-dagster-env"])
    instance = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    assert sorted(settings - services) == []
    assert sorted(settings - set(instance["run_launcher"]["config"]["env_vars"])) == []


def test_the_settings_file_with_the_deployments_passwords_is_never_committed():
    """deploy/README.md has the passwords written to deploy/.env, inside the repository: git must ignore it,
    or a `git add -A` commits them."""
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git work tree")
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "-q", "deploy/.env"], cwd=REPO_ROOT)
    assert ignored.returncode == 0, "deploy/.env is not ignored by git"
