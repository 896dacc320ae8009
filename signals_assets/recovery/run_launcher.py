"""The production run launcher: dagster-docker's, patient with a slow Docker engine.

docker-py gives up on any API call after 60 s. On a loaded host an engine busy removing a
container (slow on the vfs storage driver) answers later than that, and a run whose container
create/start call timed out failed for nothing but slowness. Named in deploy/dagster.yaml; imported
only by the instance (daemon, webserver, run workers), never by the code location.
"""

import os
import socket

from dagster import Field
from dagster._core.launcher.base import LaunchRunContext
from dagster._core.storage.dagster_run import DagsterRun
from dagster_docker import DockerRunLauncher
from dagster_docker.utils import DOCKER_CONFIG_SCHEMA

from signals_assets.recovery.local_run_launcher import LAUNCHER_HOST_TAG, LAUNCHER_TAG

DEFAULT_CLIENT_TIMEOUT_SECONDS = 300


class PatientDockerRunLauncher(DockerRunLauncher):
    """DockerRunLauncher whose Docker API calls wait `client_timeout_seconds` (default 300), and which tags each
    run with the launching process and host: a run whose launcher died before its container started is
    failed at once (sensors/dead_runs.py), not after run monitoring's start_timeout_seconds."""

    def __init__(self, inst_data=None, client_timeout_seconds: int = DEFAULT_CLIENT_TIMEOUT_SECONDS, **config):
        super().__init__(inst_data=inst_data, **config)
        self.client_timeout_seconds = client_timeout_seconds

    @classmethod
    def config_type(cls):
        return {
            **DOCKER_CONFIG_SCHEMA,
            "client_timeout_seconds": Field(
                int,
                is_required=False,
                default_value=DEFAULT_CLIENT_TIMEOUT_SECONDS,
                description="Seconds any Docker API call may take before it fails (docker-py's default: 60).",
            ),
        }

    def _get_client(self, container_context):
        client = super()._get_client(container_context)
        client.api.timeout = self.client_timeout_seconds  # the default of every request docker-py sends
        return client

    def launch_run(self, context: LaunchRunContext) -> None:
        run_id = context.dagster_run.run_id
        self._instance.add_run_tags(
            run_id, {LAUNCHER_TAG: f"{os.getpid()}/{run_id}", LAUNCHER_HOST_TAG: socket.gethostname()}
        )
        super().launch_run(context)

    def remove_unstarted_containers(self, run: DagsterRun) -> str | None:
        """For a run whose launcher died: what became of its container, when none of the run's containers ever
        started (they are removed: nothing will start them, and on the vfs storage driver each holds a copy
        of the image); None when one did (its worker reports to the run, or run monitoring sees it end)."""
        client = self._get_client(self.get_container_context(run))
        containers = client.containers.list(all=True, filters={"label": f"dagster/run_id={run.run_id}"})
        if any(container.status != "created" for container in containers):
            return None
        for container in containers:
            container.remove(force=True)
        if not containers:
            return "no container was created for it"
        return f"its container {', '.join(c.short_id for c in containers)} was created but never started (removed)"
